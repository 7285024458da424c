//! Deterministic pseudo-random blob content, generated on the fly so that a
//! 1 GiB blob is never held in memory.
//!
//! A blob is a sequence of 1 MiB blocks; block `i` of the content named by
//! `seed` is a xorshift64 stream seeded from `(seed, i)`. Every block can be
//! produced on its own, so a body can start at any block boundary (the
//! chunked upload sends 8 MiB ranges).

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use sha2::{Digest as _, Sha256};
use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};

/// Size of one generated block, and of each frame of a request body.
pub const BLOCK: u64 = 1 << 20;

fn splitmix64(z: u64) -> u64 {
    let mut x = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

/// Writes block `index` of content `seed` into `out` (at most one block long).
fn fill_block(seed: u64, index: u64, out: &mut [u8]) {
    let mut x = splitmix64(seed ^ splitmix64(index)) | 1;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let mut words = out.chunks_exact_mut(8);
    for word in &mut words {
        word.copy_from_slice(&next().to_le_bytes());
    }
    let rest = words.into_remainder();
    if !rest.is_empty() {
        let last = next().to_le_bytes();
        rest.copy_from_slice(&last[..rest.len()]);
    }
}

/// A blob's content: `size` bytes named by `seed`.
#[derive(Clone, Copy, Debug)]
pub struct Content {
    pub seed: u64,
    pub size: u64,
}

impl Content {
    pub fn new(seed: u64, size: u64) -> Content {
        Content { seed, size }
    }

    fn blocks(&self) -> u64 {
        self.size.div_ceil(BLOCK)
    }

    /// Block `index` (the last one may be short).
    pub fn block(&self, index: u64) -> Bytes {
        let start = index * BLOCK;
        assert!(start < self.size, "block {index} is past the end");
        let len = BLOCK.min(self.size - start) as usize;
        let mut buf = vec![0u8; len];
        fill_block(self.seed, index, &mut buf);
        Bytes::from(buf)
    }

    /// The whole content in memory: only for small blobs.
    pub fn bytes(&self) -> Bytes {
        assert!(self.size <= 64 << 20, "refusing to hold {} bytes in memory", self.size);
        if self.size == 0 {
            return Bytes::new();
        }
        if self.blocks() == 1 {
            return self.block(0);
        }
        let mut all = Vec::with_capacity(self.size as usize);
        for i in 0..self.blocks() {
            all.extend_from_slice(&self.block(i));
        }
        Bytes::from(all)
    }

    /// `sha256:<hex>` of the content, computed by generating it once.
    pub fn digest(&self) -> String {
        let mut hasher = Sha256::new();
        for i in 0..self.blocks() {
            hasher.update(self.block(i));
        }
        format!("sha256:{}", hex::encode(hasher.finalize()))
    }

    /// A request body streaming bytes `start..end`; `start` must be at a
    /// block boundary.
    pub fn body(&self, start: u64, end: u64) -> GenBody {
        assert!(start.is_multiple_of(BLOCK) && start <= end && end <= self.size, "bad range {start}..{end}");
        GenBody { content: *self, pos: start, end }
    }
}

/// A request body generated block by block as hyper asks for it.
pub struct GenBody {
    content: Content,
    pos: u64,
    end: u64,
}

impl Body for GenBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(mut self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        if self.pos >= self.end {
            return Poll::Ready(None);
        }
        let block = self.content.block(self.pos / BLOCK);
        let take = (block.len() as u64).min(self.end - self.pos);
        self.pos += take;
        Poll::Ready(Some(Ok(Frame::data(block.slice(..take as usize)))))
    }

    fn is_end_stream(&self) -> bool {
        self.pos >= self.end
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.end - self.pos)
    }
}

/// The digests of several contents, one thread each.
pub fn digests_of(contents: &[Content]) -> Vec<String> {
    let jobs: Vec<_> = contents
        .iter()
        .map(|c| {
            let c = *c;
            std::thread::spawn(move || c.digest())
        })
        .collect();
    jobs.into_iter().map(|j| j.join().expect("digest thread")).collect()
}

/// `sha256:<hex>` of some bytes.
pub fn sha256(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    #[test]
    fn blocks_are_deterministic_and_distinct() {
        let a = Content::new(1, 3 * BLOCK + 5);
        assert_eq!(a.block(2), a.block(2));
        assert_ne!(a.block(1), a.block(2));
        assert_ne!(a.block(0), Content::new(2, BLOCK).block(0));
        assert_eq!(a.block(3).len(), 5);
    }

    #[tokio::test]
    async fn body_ranges_concatenate_to_the_digest() {
        let c = Content::new(7, 2 * BLOCK + 100);
        let first = c.body(0, BLOCK).collect().await.unwrap().to_bytes();
        let rest = c.body(BLOCK, c.size).collect().await.unwrap().to_bytes();
        let mut all = first.to_vec();
        all.extend_from_slice(&rest);
        assert_eq!(all.len() as u64, c.size);
        assert_eq!(sha256(&all), c.digest());
        let small = Content::new(9, 4096);
        assert_eq!(sha256(&small.bytes()), small.digest());
    }
}
