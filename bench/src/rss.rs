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

/// Bytes the process has caused to be written to storage
/// (`/proc/<pid>/io` `write_bytes`, counted when pages are dirtied, so a
/// file deleted before it reached the disk still counts).
pub fn write_bytes(pid: u32) -> Option<u64> {
    let io = std::fs::read_to_string(format!("/proc/{pid}/io")).ok()?;
    io.lines().find_map(|line| line.strip_prefix("write_bytes:")?.trim().parse().ok())
}

/// CPU time of several processes together (the instances of one
/// registry), in seconds; `None` if any is unreadable.
pub fn cpu_seconds_of(pids: &[u32]) -> Option<f64> {
    pids.iter().map(|pid| cpu_seconds(*pid)).sum()
}

/// Samples a phase's processes: the registry's instances (memory, CPU) and
/// the object store they share, if any (CPU and bytes written: its memory
/// is the store's cache, not a cost of the phase).
pub struct Sampler {
    pids: Vec<u32>,
    store: Option<u32>,
    stop: Arc<AtomicBool>,
    thread: JoinHandle<u64>,
    hwm_reset: bool,
    cpu_start: Option<f64>,
    store_cpu_start: Option<f64>,
    store_written_start: Option<u64>,
}

/// What a phase cost the server.
pub struct PhaseStats {
    /// The largest peak of one instance; `None` without instances.
    pub peak_mib: Option<f64>,
    pub method: &'static str,
    /// CPU time of all instances together.
    pub cpu_s: Option<f64>,
    /// CPU time of the store.
    pub store_cpu_s: Option<f64>,
    /// What the store wrote to storage, MiB.
    pub store_write_mib: Option<f64>,
}

impl Sampler {
    pub fn start(pids: &[u32], store: Option<u32>) -> Sampler {
        let pids = pids.to_vec();
        let cpu_start = cpu_seconds_of(&pids);
        let store_cpu_start = store.and_then(cpu_seconds);
        let store_written_start = store.and_then(write_bytes);
        let hwm_reset =
            !pids.is_empty() && pids.iter().all(|pid| std::fs::write(format!("/proc/{pid}/clear_refs"), "5").is_ok());
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let sampled = pids.clone();
        let thread = std::thread::spawn(move || {
            let mut max = 0;
            loop {
                for pid in &sampled {
                    if let Some(kib) = status_kib(*pid, "VmRSS") {
                        max = max.max(kib);
                    }
                }
                if flag.load(Ordering::Relaxed) {
                    return max;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        });
        Sampler { pids, store, stop, thread, hwm_reset, cpu_start, store_cpu_start, store_written_start }
    }

    /// Peak RSS in MiB, how it was measured, and the CPU time used.
    pub fn stop(self) -> PhaseStats {
        let used = |start: Option<f64>, now: Option<f64>| Some(now? - start?);
        let cpu_s = if self.pids.is_empty() { None } else { used(self.cpu_start, cpu_seconds_of(&self.pids)) };
        let store_cpu_s = used(self.store_cpu_start, self.store.and_then(cpu_seconds));
        let store_write_mib = self
            .store
            .and_then(write_bytes)
            .zip(self.store_written_start)
            .map(|(now, start)| now.saturating_sub(start) as f64 / (1 << 20) as f64);
        self.stop.store(true, Ordering::Relaxed);
        let sampled = self.thread.join().unwrap_or(0);
        let hwm = if self.hwm_reset {
            self.pids.iter().map(|pid| status_kib(*pid, "VmHWM")).collect::<Option<Vec<_>>>()
        } else {
            None
        };
        let (peak_kib, method) = match hwm.and_then(|hwm| hwm.into_iter().max()) {
            Some(hwm) => (hwm.max(sampled), "VmRSS every 20 ms + VmHWM reset at phase start"),
            None => (sampled, "VmRSS every 20 ms"),
        };
        let peak_mib = (!self.pids.is_empty()).then_some(peak_kib as f64 / 1024.0);
        PhaseStats { peak_mib, method, cpu_s, store_cpu_s, store_write_mib }
    }
}
