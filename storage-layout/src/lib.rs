//! The data directory of the registry's storage, and the rules of the
//! storage contract (`wit/`) that do not depend on where bytes live: one
//! crate, so that `registry-host` (`host/src/storage/`) and `registry.wasm`
//! (`storage-fs/`) lay out the same files and judge arguments alike.
//!
//! ```text
//! <data>/
//!   blobs/sha256/<2 hex>/<64 hex>   committed blobs, immutable      (names)
//!   uploads/<id>                    bytes of an upload in progress  (names)
//!   uploads/<id>.hash               its hash state, registry.wasm   (hashstate)
//!   kv/<seg>/<seg>@                 one file per key                (keys, entry)
//!   locks/<32 hex>                  kv write locks, registry.wasm   (keys)
//!   tmp/                            temporary files, renamed into place
//! ```
//!
//! What each backend keeps for itself (`registry-host`'s journal, shared
//! empty files and compiled-code cache) is described by that backend.
//!
//! The rules: key checks, escaping and listing ([`keys`]); value files and
//! versions ([`entry`]); digests, upload ids and blob paths ([`names`]);
//! range reads ([`span`]); the pages of `list` and `list-uploads`
//! ([`pages`]); the size limits ([`keys::MAX_KEY_LEN`],
//! [`entry::MAX_VALUE_LEN`], [`names::MAX_UPLOAD_ID_LEN`]); how long
//! temporary files live ([`ages`]); and the error type ([`error`]). Plain
//! Rust: it builds natively and for `wasm32-wasip2`, and is unit-tested
//! natively.

#![deny(missing_docs)]

pub mod ages;
pub mod entry;
pub mod error;
pub mod hashstate;
pub mod keys;
pub mod names;
pub mod pages;
pub mod span;

pub use error::{StorageError, StorageResult};
