//! How long leftovers live: temporary files are renamed or removed within
//! one request, so one older than an hour was left by a crash. (Abandoned
//! uploads are the registry's business: its garbage collection aborts them,
//! see `blobs.list-uploads`.)

use std::time::Duration;

/// A temporary file older than this is removed.
pub const TMP_MAX_AGE: Duration = Duration::from_secs(3600);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_hour_for_temporary_files() {
        assert_eq!(TMP_MAX_AGE.as_secs(), 3600);
    }
}
