//! Peak resident memory of the server process during a phase.
//!
//! A background thread samples `VmRSS` from `/proc/<pid>/status` every
//! 20 ms. Where the kernel allows it (root, Linux ≥ 4.0), the phase also
//! resets the process's high-water mark (`echo 5 > /proc/<pid>/clear_refs`)
//! at its start and reads `VmHWM` at its end, which catches peaks shorter
//! than the sampling period; the result is the larger of the two.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

/// A `kB` field of `/proc/<pid>/status`, in KiB.
pub fn status_kib(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|rest| rest.split_whitespace().next()?.parse().ok())
}

/// CPU time (user + system, all threads) the process has used, in seconds.
/// Assumes the usual 100 clock ticks per second.
pub fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name is in parentheses and may hold spaces: split after it.
    let fields: Vec<&str> = stat[stat.rfind(')')? + 1..].split_whitespace().collect();
    // fields[0] is field 3 (state); utime and stime are fields 14 and 15.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) as f64 / 100.0)
}

pub fn rss_mib(pid: u32) -> Option<f64> {
    status_kib(pid, "VmRSS").map(|k| k as f64 / 1024.0)
}

pub struct Sampler {
    pid: u32,
    stop: Arc<AtomicBool>,
    thread: JoinHandle<u64>,
    hwm_reset: bool,
    cpu_start: Option<f64>,
}

/// What a phase cost the server.
pub struct PhaseStats {
    pub peak_mib: f64,
    pub method: &'static str,
    pub cpu_s: Option<f64>,
}

impl Sampler {
    pub fn start(pid: u32) -> Sampler {
        let cpu_start = cpu_seconds(pid);
        let hwm_reset = std::fs::write(format!("/proc/{pid}/clear_refs"), "5").is_ok();
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut max = 0;
            loop {
                if let Some(kib) = status_kib(pid, "VmRSS") {
                    max = max.max(kib);
                }
                if flag.load(Ordering::Relaxed) {
                    return max;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        });
        Sampler { pid, stop, thread, hwm_reset, cpu_start }
    }

    /// Peak RSS in MiB, how it was measured, and the CPU time used.
    pub fn stop(self) -> PhaseStats {
        let cpu_s = match (self.cpu_start, cpu_seconds(self.pid)) {
            (Some(a), Some(b)) => Some(b - a),
            _ => None,
        };
        self.stop.store(true, Ordering::Relaxed);
        let sampled = self.thread.join().unwrap_or(0);
        let hwm = if self.hwm_reset { status_kib(self.pid, "VmHWM") } else { None };
        let (peak_kib, method) = match hwm {
            Some(hwm) => (hwm.max(sampled), "VmRSS every 20 ms + VmHWM reset at phase start"),
            None => (sampled, "VmRSS every 20 ms"),
        };
        PhaseStats { peak_mib: peak_kib as f64 / 1024.0, method, cpu_s }
    }
}
