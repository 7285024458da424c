//! The changes of blobs and keys that the journal (`journal.rs`) records,
//! and which of them start-up redoes.
//!
//! Every change of a blob or a key appends a record naming it, in the
//! order the changes happen to that name. At start-up the last record of
//! each name is redone ([`Change`] says how), so the journal is what makes
//! the name's latest state durable:
//! - a small blob's bytes travel in its record, and its file gets its
//!   name only after the record is durable (the blob store renames it),
//!   so that no crash can expose a name whose data never reached the disk;
//! - a first empty kv value (a link) is created at once: its content is
//!   right whether or not it is durable, and the record recreates it;
//! - deletes are done at once and redone from their records;
//! - everything else (large blobs, values) is fsynced on its own path; its
//!   record only keeps an earlier record of the same name from being
//!   redone over it.
//!
//! A touch of a blob (garbage collection keeps blobs touched since it
//! began) changes only its time, so it takes no part in that: after the
//! last changes of every name, the latest touch of each blob is redone on
//! the blob if there is one then, never setting its time back.
//!
//! A record's payload: kind (u8), name length (u16 LE), name, then a small
//! blob's data, or a touch's time (u64 LE, seconds since the epoch).

use sha2::{Digest as _, Sha256};

/// Blobs up to this size travel in their record; larger ones are fsynced
/// on their own (their bytes would cost more to write twice).
pub const BLOB_IN_RECORD_MAX: u64 = 64 * 1024;

/// One change, as the journal records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// A small blob: redone by writing these bytes under its name.
    BlobData {
        /// The blob's SHA-256, hex.
        hex: String,
        /// Its bytes.
        data: Vec<u8>,
    },
    /// A blob fsynced on its own path: nothing to redo.
    BlobSynced {
        /// The blob's SHA-256, hex.
        hex: String,
    },
    /// A removed blob: redone by removing it.
    BlobDeleted {
        /// The blob's SHA-256, hex.
        hex: String,
    },
    /// A key's first value, empty: redone by creating it if absent.
    KvCreatedEmpty {
        /// The key.
        key: String,
    },
    /// A key written and fsynced on its own path: nothing to redo.
    KvSynced {
        /// The key.
        key: String,
    },
    /// A removed key: redone by removing it.
    KvDeleted {
        /// The key.
        key: String,
    },
    /// A blob touched: redone by moving its modification time up to `time`.
    BlobTouched {
        /// The blob's SHA-256, hex.
        hex: String,
        /// When, in seconds since the epoch.
        time: u64,
    },
}

impl Change {
    fn kind(&self) -> u8 {
        match self {
            Change::BlobData { .. } => 1,
            Change::BlobSynced { .. } => 2,
            Change::BlobDeleted { .. } => 3,
            Change::KvCreatedEmpty { .. } => 4,
            Change::KvSynced { .. } => 5,
            Change::KvDeleted { .. } => 6,
            Change::BlobTouched { .. } => 7,
        }
    }

    /// Whether the change is of a blob (else of a key).
    pub fn is_blob(&self) -> bool {
        matches!(
            self,
            Change::BlobData { .. }
                | Change::BlobSynced { .. }
                | Change::BlobDeleted { .. }
                | Change::BlobTouched { .. }
        )
    }

    /// The blob or key the change is about; blobs and keys are apart.
    pub fn name(&self) -> (bool, &str) {
        match self {
            Change::BlobData { hex, .. }
            | Change::BlobSynced { hex }
            | Change::BlobDeleted { hex }
            | Change::BlobTouched { hex, .. } => (true, hex),
            Change::KvCreatedEmpty { key } | Change::KvSynced { key } | Change::KvDeleted { key } => (false, key),
        }
    }

    /// The journal record's payload.
    pub fn encode(&self) -> Vec<u8> {
        let (_, name) = self.name();
        let time;
        let data: &[u8] = match self {
            Change::BlobData { data, .. } => data,
            Change::BlobTouched { time: t, .. } => {
                time = t.to_le_bytes();
                &time
            }
            _ => &[],
        };
        let mut out = Vec::with_capacity(3 + name.len() + data.len());
        out.push(self.kind());
        out.extend_from_slice(&(name.len() as u16).to_le_bytes());
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(data);
        out
    }

    /// The change a payload holds; `None` if it holds none.
    pub fn decode(payload: &[u8]) -> Option<Change> {
        let (&kind, rest) = payload.split_first()?;
        let len = u16::from_le_bytes(rest.get(..2)?.try_into().ok()?) as usize;
        let name = std::str::from_utf8(rest.get(2..2 + len)?).ok()?.to_string();
        let data = &rest[2 + len..];
        let change = match kind {
            1 => Change::BlobData { hex: name, data: data.to_vec() },
            2 => Change::BlobSynced { hex: name },
            3 => Change::BlobDeleted { hex: name },
            4 => Change::KvCreatedEmpty { key: name },
            5 => Change::KvSynced { key: name },
            6 => Change::KvDeleted { key: name },
            7 => Change::BlobTouched { hex: name, time: u64::from_le_bytes(data.try_into().ok()?) },
            _ => return None,
        };
        (kind == 1 || kind == 7 || data.is_empty()).then_some(change)
    }
}

/// The changes to redo from the journal's `payloads`: the last one of
/// each name, in journal order, then the latest touch of each blob. A
/// payload that holds no change ends them, as a torn record would (it
/// cannot pass the record's checksum unless a newer version wrote it:
/// nothing after it is understood either).
pub fn to_redo(payloads: Vec<Vec<u8>>) -> Vec<Change> {
    let mut changes = Vec::with_capacity(payloads.len());
    let mut touches = Vec::new();
    for payload in payloads {
        match Change::decode(&payload) {
            Some(touch @ Change::BlobTouched { .. }) => touches.push(touch),
            Some(change) => changes.push(change),
            None => {
                tracing::warn!("journal: a record holds no known change; ignoring it and what follows");
                break;
            }
        }
    }
    let mut redo = latest_per_name(changes);
    redo.extend(latest_per_name(touches));
    redo
}

/// Of `changes`, the last one of each name, in journal order: redoing
/// only those gives each name its latest recorded state.
fn latest_per_name(changes: Vec<Change>) -> Vec<Change> {
    let mut last = std::collections::HashMap::new();
    for (i, change) in changes.iter().enumerate() {
        let (is_blob, name) = change.name();
        last.insert((is_blob, name.to_string()), i);
    }
    let mut keep: Vec<usize> = last.into_values().collect();
    keep.sort_unstable();
    let mut changes: Vec<Option<Change>> = changes.into_iter().map(Some).collect();
    keep.into_iter().filter_map(|i| changes[i].take()).collect()
}

/// SHA-256 of `data` in hex, to check a blob record before redoing it.
pub fn hex_of(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn blob(n: u8) -> Change {
        let data = vec![n; 100];
        Change::BlobData { hex: hex_of(&data), data }
    }

    #[test]
    fn changes_round_trip() {
        for change in [
            blob(1),
            Change::BlobSynced { hex: "ab".repeat(32) },
            Change::BlobDeleted { hex: "cd".repeat(32) },
            Change::KvCreatedEmpty { key: "repos/a/b".into() },
            Change::KvSynced { key: "k".into() },
            Change::KvDeleted { key: "é/x".into() },
            Change::BlobTouched { hex: "ef".repeat(32), time: 1_700_000_000 },
        ] {
            assert_eq!(Change::decode(&change.encode()), Some(change));
        }
        assert_eq!(Change::decode(&[9, 0, 0]), None);
        assert_eq!(Change::decode(&[4, 5, 0, b'a']), None);
        assert_eq!(Change::decode(&[7, 1, 0, b'a', 0, 0]), None, "a touch without its 8 bytes of time");
    }

    #[test]
    fn the_last_change_of_each_name_wins() {
        let key = |k: &str| k.to_string();
        let changes = [
            Change::KvCreatedEmpty { key: key("a") },
            blob(1),
            Change::KvDeleted { key: key("a") },
            Change::KvCreatedEmpty { key: key("b") },
            Change::KvSynced { key: key("a") },
        ];
        assert_eq!(
            to_redo(changes.iter().map(Change::encode).collect()),
            vec![blob(1), Change::KvCreatedEmpty { key: key("b") }, Change::KvSynced { key: key("a") }]
        );
    }

    #[test]
    fn touches_come_last_and_never_stand_for_a_blob_s_bytes() {
        let touch = |time| Change::BlobTouched { hex: blob(1).name().1.to_string(), time };
        let changes = [blob(1), touch(5), Change::KvDeleted { key: "k".into() }, touch(9), blob(2)];
        assert_eq!(
            to_redo(changes.iter().map(Change::encode).collect()),
            vec![blob(1), Change::KvDeleted { key: "k".into() }, blob(2), touch(9)]
        );
    }

    #[test]
    fn an_unknown_record_ends_the_redo() {
        let payloads = vec![blob(1).encode(), vec![42, 0, 0], blob(2).encode()];
        assert_eq!(to_redo(payloads), vec![blob(1)]);
    }
}
