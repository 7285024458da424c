//! Range arithmetic for `blobs.read`.

use crate::error::{StorageError, StorageResult};

/// What part of a blob of `size` bytes a read of `offset`/`length` yields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    /// First byte.
    pub offset: u64,
    /// Number of bytes.
    pub len: u64,
}

impl Span {
    /// The contract's rule: an `offset` past the end is `invalid`; a
    /// `length` running past the end is cut at the end; no `length` reads
    /// to the end. `offset == size` is an empty read, not an error.
    pub fn of(size: u64, offset: u64, length: Option<u64>) -> StorageResult<Span> {
        if offset > size {
            return Err(StorageError::Invalid(format!("offset {offset} is past the end of the blob ({size} bytes)")));
        }
        let available = size - offset;
        let len = length.map_or(available, |l| l.min(available));
        Ok(Span { offset, len })
    }

    /// Whether a stream that runs from `offset` to the end of the file
    /// yields exactly this span (so no copy is needed to bound it). An
    /// empty span is served by a stream that starts at the end.
    pub fn reaches_end(&self, size: u64) -> bool {
        self.len == 0 || self.offset + self.len == size
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whole_and_tails() {
        assert_eq!(Span::of(10, 0, None).unwrap(), Span { offset: 0, len: 10 });
        assert_eq!(Span::of(10, 3, None).unwrap(), Span { offset: 3, len: 7 });
        assert_eq!(Span::of(10, 3, Some(100)).unwrap(), Span { offset: 3, len: 7 });
        assert!(Span::of(10, 3, Some(7)).unwrap().reaches_end(10));
        assert!(Span::of(10, 0, None).unwrap().reaches_end(10));
    }

    #[test]
    fn inner_ranges_need_bounding() {
        let span = Span::of(10, 2, Some(3)).unwrap();
        assert_eq!(span, Span { offset: 2, len: 3 });
        assert!(!span.reaches_end(10));
    }

    #[test]
    fn empty_reads() {
        assert_eq!(Span::of(10, 10, None).unwrap(), Span { offset: 10, len: 0 });
        assert_eq!(Span::of(0, 0, None).unwrap(), Span { offset: 0, len: 0 });
        let zero = Span::of(10, 4, Some(0)).unwrap();
        assert_eq!(zero.len, 0);
        assert!(zero.reaches_end(10));
    }

    #[test]
    fn offset_past_the_end_is_invalid() {
        assert!(matches!(Span::of(10, 11, None), Err(StorageError::Invalid(_))));
        assert!(matches!(Span::of(0, 1, Some(0)), Err(StorageError::Invalid(_))));
        // No overflow near u64::MAX.
        assert_eq!(Span::of(u64::MAX, u64::MAX - 1, Some(u64::MAX)).unwrap().len, 1);
    }
}
