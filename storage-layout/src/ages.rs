//! How long leftovers live: uploads nobody touches are abandoned after a
//! week (distribution's default), temporary files after an hour (they are
//! renamed or removed within one request, so an older one was left by a
//! crash).

use std::time::Duration;

/// An upload (and its hash state) untouched for this long is removed.
pub const UPLOAD_MAX_AGE: Duration = Duration::from_secs(7 * 24 * 3600);
/// A temporary file older than this is removed.
pub const TMP_MAX_AGE: Duration = Duration::from_secs(3600);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_week_for_uploads_an_hour_for_temporary_files() {
        assert_eq!(UPLOAD_MAX_AGE.as_secs(), 604_800);
        assert_eq!(TMP_MAX_AGE.as_secs(), 3600);
    }
}
