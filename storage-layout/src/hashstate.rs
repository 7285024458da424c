//! The running SHA-256 of an upload, persisted between requests.
//!
//! The registry splices request bodies straight into the upload file, so
//! this component never sees those bytes as they pass. Instead, whenever an
//! upload is touched (`size`, `append`, `commit`), the bytes between the
//! persisted offset and the end of the file are read back once and hashed,
//! and the new state is saved next to the upload (`uploads/<id>.hash`). Each
//! byte is therefore hashed exactly once, however many chunks the upload
//! has, and no call re-reads the whole blob.
//!
//! The file format is: the 8-byte magic [`MAGIC`], the number of bytes
//! hashed (u64, little-endian), then the hasher state as serialized by
//! `sha2` 0.11 (`SerializableState`, whose format is stable across 0.11.x).
//! The magic names that format: a state written by anything else is not
//! decoded, and the upload is rehashed from its first byte instead.

use sha2::digest::common::hazmat::{SerializableState, SerializedState};
use sha2::{Digest as _, Sha256};

/// First bytes of a hash-state file, version 1 (sha2 0.11 state).
pub const MAGIC: &[u8; 8] = b"rsha256\x01";

/// How many leading bytes of an upload are hashed, and their SHA-256 state.
#[derive(Clone)]
pub struct UploadHash {
    hashed: u64,
    hasher: Sha256,
}

impl Default for UploadHash {
    fn default() -> Self {
        UploadHash::new()
    }
}

impl UploadHash {
    /// The state of an empty upload.
    pub fn new() -> UploadHash {
        UploadHash { hashed: 0, hasher: Sha256::new() }
    }

    /// Number of leading bytes of the upload that the state covers.
    pub fn hashed(&self) -> u64 {
        self.hashed
    }

    /// Hashes the next bytes of the upload.
    pub fn update(&mut self, bytes: &[u8]) {
        self.hasher.update(bytes);
        self.hashed += bytes.len() as u64;
    }

    /// The lowercase hex SHA-256 of the bytes hashed so far.
    pub fn hex_digest(&self) -> String {
        crate::names::hex(&self.hasher.clone().finalize())
    }

    /// The persisted form (see the module docs).
    pub fn encode(&self) -> Vec<u8> {
        let state = self.hasher.serialize();
        let mut out = Vec::with_capacity(MAGIC.len() + 8 + state.len());
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&self.hashed.to_le_bytes());
        out.extend_from_slice(&state);
        out
    }

    /// Reads back what [`encode`](Self::encode) wrote; `None` for anything
    /// else (another format, a truncated or garbled file).
    pub fn decode(bytes: &[u8]) -> Option<UploadHash> {
        let rest = bytes.strip_prefix(MAGIC.as_slice())?;
        if rest.len() < 8 {
            return None;
        }
        let (count, state) = rest.split_at(8);
        let hashed = u64::from_le_bytes(count.try_into().ok()?);
        let state = SerializedState::<Sha256>::try_from(state).ok()?;
        let hasher = Sha256::deserialize(&state).ok()?;
        Some(UploadHash { hashed, hasher })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one_shot(bytes: &[u8]) -> String {
        crate::names::hex(&Sha256::digest(bytes))
    }

    #[test]
    fn empty_upload_has_the_empty_digest() {
        assert_eq!(UploadHash::new().hex_digest(), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    }

    #[test]
    fn round_trips_between_chunks_of_any_size() {
        let data: Vec<u8> = (0..10_000u32).map(|i| (i * 7 + i / 13) as u8).collect();
        // Chunk sizes around the 64-byte block, and odd ones.
        for chunk in [1usize, 7, 63, 64, 65, 128, 1000, 4096, 10_000] {
            let mut state = UploadHash::new();
            for piece in data.chunks(chunk) {
                let bytes = state.encode();
                state = UploadHash::decode(&bytes).expect("decodes its own encoding");
                state.update(piece);
            }
            let state = UploadHash::decode(&state.encode()).unwrap();
            assert_eq!(state.hashed(), data.len() as u64, "chunk {chunk}");
            assert_eq!(state.hex_digest(), one_shot(&data), "chunk {chunk}");
        }
    }

    #[test]
    fn hex_digest_does_not_consume_the_state() {
        let mut state = UploadHash::new();
        state.update(b"hello ");
        let _ = state.hex_digest();
        state.update(b"world");
        assert_eq!(state.hex_digest(), one_shot(b"hello world"));
    }

    #[test]
    fn rejects_foreign_or_damaged_files() {
        let mut state = UploadHash::new();
        state.update(b"some bytes");
        let good = state.encode();
        assert!(UploadHash::decode(&good).is_some());
        assert!(UploadHash::decode(b"").is_none());
        assert!(UploadHash::decode(&good[..good.len() - 1]).is_none(), "truncated");
        assert!(UploadHash::decode(&good[..MAGIC.len() + 4]).is_none(), "no state");
        let mut extra = good.clone();
        extra.push(0);
        assert!(UploadHash::decode(&extra).is_none(), "trailing byte");
        let mut other_magic = good.clone();
        other_magic[7] = 2;
        assert!(UploadHash::decode(&other_magic).is_none(), "unknown version");
    }
}
