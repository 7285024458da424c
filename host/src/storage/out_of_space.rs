//! Reports a full data directory to the operator: once per burst of
//! refused writes, with the space the filesystem has left, not once per
//! request (a busy registry on a full disk would flood its log).

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// At most one report per this long.
const QUIET: Duration = Duration::from_secs(60);

/// Refused writes of one data directory, and when they were last reported.
pub struct OutOfSpace {
    data_dir: PathBuf,
    last_report: Mutex<Option<Instant>>,
    /// Refusals since the last report.
    unreported: AtomicU64,
}

impl OutOfSpace {
    /// Nothing refused yet.
    pub fn new(data_dir: PathBuf) -> OutOfSpace {
        OutOfSpace { data_dir, last_report: Mutex::new(None), unreported: AtomicU64::new(0) }
    }

    /// Notes one write refused for want of space, and logs it unless a
    /// report went out less than a minute ago (the next report counts it).
    pub fn refused(&self) {
        self.unreported.fetch_add(1, Ordering::Relaxed);
        let now = Instant::now();
        {
            let mut last = self.last_report.lock().unwrap_or_else(|p| p.into_inner());
            if last.is_some_and(|at| now.duration_since(at) < QUIET) {
                return;
            }
            *last = Some(now);
        }
        let refused = self.unreported.swap(0, Ordering::Relaxed);
        tracing::error!(
            "data directory {} is out of space ({}): {refused} write(s) refused with 507 since the last report; \
             pushes succeed again as soon as space is freed",
            self.data_dir.display(),
            free_space(&self.data_dir),
        );
    }
}

/// "N MiB free of M MiB", or why that is unknown.
fn free_space(dir: &std::path::Path) -> String {
    match rustix::fs::statvfs(dir) {
        Ok(st) => {
            let mib = |blocks: u64| blocks.saturating_mul(st.f_frsize) / (1024 * 1024);
            format!("{} MiB free of {} MiB", mib(st.f_bavail), mib(st.f_blocks))
        }
        Err(e) => format!("free space unknown: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_is_reported_once_and_counted() {
        let report = OutOfSpace::new(std::env::temp_dir());
        report.refused();
        assert_eq!(report.unreported.load(Ordering::Relaxed), 0, "the first refusal is reported at once");
        report.refused();
        report.refused();
        assert_eq!(report.unreported.load(Ordering::Relaxed), 2, "later ones wait for the next report");
    }

    #[test]
    fn free_space_names_the_sizes() {
        let text = free_space(&std::env::temp_dir());
        assert!(text.contains("MiB free of"), "{text}");
    }
}
