//! Byte ranges: the upload `Content-Range` / `Range` headers and blob `Range`.
//!
//! Spec: OCI distribution-spec v1.1 "Pushing a blob in chunks" (end-5,
//! end-13): a chunk's `Content-Range` is `<start>-<end>`, inclusive, matching
//! `^[0-9]+-[0-9]+$`, and progress is reported as `Range: 0-<end-of-range>`.
//! "Pulling blobs" (end-2): registries SHOULD support `Range` per RFC 9110
//! §14, which also says a server MAY ignore a `Range` header.
//!
//! Choices:
//! - A PATCH `Content-Range` is also accepted in the RFC 9110 response form
//!   `bytes <start>-<end>/<total|*>` and as `bytes=<start>-<end>`, because
//!   some clients send those; anything else is `BLOB_UPLOAD_INVALID`.
//! - A blob `Range` that is malformed, uses another unit, or asks for several
//!   ranges is ignored: the blob is served whole with 200. Multipart
//!   responses are rarely used by registry clients (they resume with one
//!   `bytes=<n>-`), and RFC 9110 permits ignoring the header.
//! - A zero-length blob is always served whole (200, empty): no range of it
//!   can be expressed, and a 416 there helps no client.

use std::fmt;

/// A satisfiable part of a blob: `length` bytes starting at `offset`.
/// `length` is never zero.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ByteRange {
    /// First byte served.
    pub offset: u64,
    /// Number of bytes served (at least 1).
    pub length: u64,
}

impl ByteRange {
    /// Position of the last byte served (inclusive).
    pub fn last(&self) -> u64 {
        self.offset + self.length - 1
    }

    /// The `Content-Range` value of a 206 response: `bytes <a>-<b>/<size>`.
    pub fn content_range(&self, size: u64) -> String {
        format!("bytes {}-{}/{}", self.offset, self.last(), size)
    }
}

/// A PATCH `Content-Range` that cannot be read. Maps to `BLOB_UPLOAD_INVALID`
/// (400). An out-of-order but well-formed range is the handler's business
/// (416, `RegistryError::RangeNotSatisfiable`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContentRangeError;

impl fmt::Display for ContentRangeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Content-Range must be <start>-<end> with start <= end")
    }
}

impl std::error::Error for ContentRangeError {}

/// A blob `Range` none of whose bytes exist. Maps to
/// `RegistryError::RangeNotSatisfiable` (416); the response should carry
/// `Content-Range: ` + [`unsatisfied_content_range`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RangeNotSatisfiable;

impl fmt::Display for RangeNotSatisfiable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("requested range is beyond the end of the blob")
    }
}

impl std::error::Error for RangeNotSatisfiable {}

/// Parses `[0-9]+`, saturating at `u64::MAX` (such a position is past the
/// end of any blob, which callers handle); `None` if not all digits.
fn parse_digits(s: &str) -> Option<u64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(s.parse().unwrap_or(u64::MAX))
}

/// Strips a leading range unit `bytes` followed by `sep`, case-insensitively.
fn strip_bytes_unit(s: &str, sep: char) -> Option<&str> {
    let unit = s.get(..5)?;
    if !unit.eq_ignore_ascii_case("bytes") {
        return None;
    }
    s[5..].trim_start().strip_prefix(sep).map(str::trim_start)
}

/// Parses a PATCH `Content-Range` into `(start, end)`, both inclusive.
///
/// Accepts `<start>-<end>` (the spec's form), `bytes <start>-<end>/<total>`
/// or `.../*`, and `bytes=<start>-<end>`. Requires `start <= end`, and
/// `end < total` when a total is given.
pub fn parse_content_range(value: &str) -> Result<(u64, u64), ContentRangeError> {
    let value = value.trim();
    let (span, total) = if let Some(rest) = strip_bytes_unit(value, '=') {
        (rest, None)
    } else if let Some(rest) =
        value.get(..6).filter(|p| p.eq_ignore_ascii_case("bytes ")).map(|_| value[6..].trim_start())
    {
        let (span, total) = rest.split_once('/').ok_or(ContentRangeError)?;
        (span, Some(total.trim()))
    } else {
        (value, None)
    };
    let (start, end) = span.trim().split_once('-').ok_or(ContentRangeError)?;
    let start = parse_digits(start).ok_or(ContentRangeError)?;
    let end = parse_digits(end).ok_or(ContentRangeError)?;
    if start > end {
        return Err(ContentRangeError);
    }
    match total {
        None | Some("*") => {}
        Some(total) => {
            let total = parse_digits(total).ok_or(ContentRangeError)?;
            if end >= total {
                return Err(ContentRangeError);
            }
        }
    }
    Ok((start, end))
}

/// Resolves a blob GET `Range` header against the blob's `size`.
///
/// `Ok(Some(range))`: serve 206 with that part. `Ok(None)`: ignore the
/// header and serve the whole blob with 200 (malformed, other unit, several
/// ranges, or an empty blob). `Err`: 416.
///
/// Supports `bytes=a-b` (b is clamped to the end), `bytes=a-` and the suffix
/// form `bytes=-n` (the last n bytes, or all if n > size).
pub fn parse_range(value: &str, size: u64) -> Result<Option<ByteRange>, RangeNotSatisfiable> {
    if size == 0 {
        return Ok(None);
    }
    let Some(set) = strip_bytes_unit(value.trim(), '=') else {
        return Ok(None);
    };
    if set.contains(',') {
        return Ok(None);
    }
    let Some((first, last)) = set.trim().split_once('-') else {
        return Ok(None);
    };
    let (first, last) = (first.trim(), last.trim());
    if first.is_empty() {
        // Suffix range: the final `n` bytes.
        let Some(n) = parse_digits(last) else {
            return Ok(None);
        };
        if n == 0 {
            return Err(RangeNotSatisfiable);
        }
        let length = n.min(size);
        return Ok(Some(ByteRange { offset: size - length, length }));
    }
    let Some(start) = parse_digits(first) else {
        return Ok(None);
    };
    let end = if last.is_empty() {
        size - 1
    } else {
        match parse_digits(last) {
            // RFC 9110: last < first makes the header invalid, so ignore it.
            Some(end) if end < start => return Ok(None),
            Some(end) => end.min(size - 1),
            None => return Ok(None),
        }
    };
    if start >= size {
        return Err(RangeNotSatisfiable);
    }
    Ok(Some(ByteRange { offset: start, length: end - start + 1 }))
}

/// The `Content-Range` value of a 416 response: `bytes */<size>`.
pub fn unsatisfied_content_range(size: u64) -> String {
    format!("bytes */{size}")
}

/// The `Range` header of an upload status (end-5, end-13): `0-<last byte>`.
///
/// An empty upload has no last byte, and the spec's inclusive form cannot
/// say "nothing yet" (`0--1` is not a range). distribution clamps the end at
/// 0 and sends `0-0`, and clients are built against that, so we do the same.
/// The cost: `0-0` means "0 or 1 bytes received"; the handler should not
/// read its own `Range` header back, but ask the blob store for the size.
pub fn upload_range(size: u64) -> String {
    format!("0-{}", size.saturating_sub(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_range_spec_form() {
        assert_eq!(parse_content_range("0-0"), Ok((0, 0)));
        assert_eq!(parse_content_range("0-1023"), Ok((0, 1023)));
        assert_eq!(parse_content_range(" 1024-2047 "), Ok((1024, 2047)));
        assert_eq!(parse_content_range("18446744073709551615-18446744073709551615"), Ok((u64::MAX, u64::MAX)));
    }

    #[test]
    fn content_range_tolerated_forms() {
        assert_eq!(parse_content_range("bytes 0-9/10"), Ok((0, 9)));
        assert_eq!(parse_content_range("bytes 10-19/*"), Ok((10, 19)));
        assert_eq!(parse_content_range("Bytes  10-19 / * "), Ok((10, 19)));
        assert_eq!(parse_content_range("bytes=5-6"), Ok((5, 6)));
        assert_eq!(parse_content_range("BYTES = 5-6"), Ok((5, 6)));
    }

    #[test]
    fn content_range_rejects_garbage() {
        for bad in [
            "",
            "-",
            "0-",
            "-5",
            "5-4",
            "a-b",
            "+1-2",
            "1-+2",
            "0x1-2",
            "1 - 2x",
            "1-2-3",
            "bytes 0-9",
            "bytes 0-9/9",
            "bytes 0-9/x",
            "bytes=0-",
            "bytes=-5",
            "bytes=0-1,3-4",
            "octets=0-1",
            "bytesx=0-1",
        ] {
            assert_eq!(parse_content_range(bad), Err(ContentRangeError), "{bad:?}");
        }
    }

    fn r(offset: u64, length: u64) -> Result<Option<ByteRange>, RangeNotSatisfiable> {
        Ok(Some(ByteRange { offset, length }))
    }

    #[test]
    fn range_closed_and_open() {
        assert_eq!(parse_range("bytes=0-0", 10), r(0, 1));
        assert_eq!(parse_range("bytes=0-9", 10), r(0, 10));
        assert_eq!(parse_range("bytes=2-5", 10), r(2, 4));
        assert_eq!(parse_range("bytes=2-", 10), r(2, 8));
        assert_eq!(parse_range("bytes=9-", 10), r(9, 1));
        // End past the blob is clamped.
        assert_eq!(parse_range("bytes=5-100", 10), r(5, 5));
        assert_eq!(parse_range("bytes=5-99999999999999999999999", 10), r(5, 5));
        assert_eq!(parse_range(" Bytes = 1 - 2 ", 10), r(1, 2));
    }

    #[test]
    fn range_suffix() {
        assert_eq!(parse_range("bytes=-1", 10), r(9, 1));
        assert_eq!(parse_range("bytes=-4", 10), r(6, 4));
        assert_eq!(parse_range("bytes=-10", 10), r(0, 10));
        assert_eq!(parse_range("bytes=-500", 10), r(0, 10));
        assert_eq!(parse_range("bytes=-0", 10), Err(RangeNotSatisfiable));
    }

    #[test]
    fn range_unsatisfiable() {
        assert_eq!(parse_range("bytes=10-", 10), Err(RangeNotSatisfiable));
        assert_eq!(parse_range("bytes=10-20", 10), Err(RangeNotSatisfiable));
        assert_eq!(parse_range("bytes=99999999999999999999-", 10), Err(RangeNotSatisfiable));
    }

    #[test]
    fn range_ignored() {
        for ignored in [
            "",
            "bytes",
            "bytes=",
            "bytes=-",
            "bytes=a-b",
            "bytes=5-2",
            "bytes=0-1,4-5",
            "items=0-1",
            "0-1",
            "bytes=1",
            "bytes=+1-2",
        ] {
            assert_eq!(parse_range(ignored, 10), Ok(None), "{ignored:?}");
        }
        // Empty blob: always served whole.
        assert_eq!(parse_range("bytes=0-", 0), Ok(None));
        assert_eq!(parse_range("bytes=-5", 0), Ok(None));
    }

    #[test]
    fn formatting() {
        let range = ByteRange { offset: 2, length: 4 };
        assert_eq!(range.last(), 5);
        assert_eq!(range.content_range(10), "bytes 2-5/10");
        assert_eq!(unsatisfied_content_range(10), "bytes */10");
        assert_eq!(upload_range(0), "0-0");
        assert_eq!(upload_range(1), "0-0");
        assert_eq!(upload_range(2), "0-1");
        assert_eq!(upload_range(1024), "0-1023");
    }
}
