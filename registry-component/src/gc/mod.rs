//! Online garbage collection: mark and sweep over the storage contract, in
//! bounded steps whose cursor lives in storage ([`run`]), so that it runs
//! the same in every deployment, on platforms that cap CPU per request, and
//! goes on after a crash.
//!
//! A run:
//! 1. **Mark** ([`mark`]): for each repository, every manifest it keeps
//!    (all of them, or with delete-untagged those a tag reaches, their
//!    index children and referrers, and those pushed within the grace
//!    period) marks itself and the blobs it names. With delete-untagged the
//!    others are unlinked there and then, behind the repository's
//!    [`fence`].
//! 2. **Sweep blobs** ([`sweep`]): every blob neither marked nor touched
//!    since the cutoff (the run's start minus the grace period) is removed
//!    with `delete-if-older`.
//! 3. **Sweep links**: links to blobs that are gone are removed.
//! 4. **Expire uploads** nobody appended to for longer than the maximum age.
//! 5. **Clean up** the marks; the run's state stays as its report.
//!
//! Why a push never loses to a run: everything a push relies on it touches
//! first (a mount touches the blob, a commit of stored bytes touches them, a
//! manifest push touches what it names and its own bytes), and the store
//! never removes a blob touched at or after the cutoff, atomically
//! (`wit/blobs.wit`). Links are removed only once their blob is gone and
//! put back if it came back meanwhile. Blob and manifest deletes through
//! the API only unlink; bytes leave here.

pub mod endpoint;
pub mod fence;
mod mark;
pub mod run;
pub mod settings;
mod sweep;

#[cfg(test)]
mod tests;

use crate::error::RegistryError;
use crate::storage::{Error, Storage};
use crate::store::keys;
use run::{Lease, Phase, Run, LEASE_SECS};
pub use settings::GcSettings;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Whole seconds since the epoch.
pub fn seconds(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// How much one step may do: a wall-clock limit (platforms cap CPU per
/// request) and a number of items (repositories, blobs, links, uploads).
#[derive(Debug, Clone, Copy)]
pub struct Budget {
    started: Instant,
    time: Duration,
    items: u64,
    done: u64,
}

impl Budget {
    /// At most `time` and `items`.
    pub fn new(time: Duration, items: u64) -> Budget {
        Budget { started: Instant::now(), time, items, done: 0 }
    }

    /// Counts `n` items done.
    fn spend(&mut self, n: u64) {
        self.done += n;
    }

    fn spent(&self) -> bool {
        self.done >= self.items || self.started.elapsed() >= self.time
    }
}

impl Default for Budget {
    /// Two seconds or 5,000 items: well inside the 10-30 s that edge
    /// platforms give a request.
    fn default() -> Self {
        Budget::new(Duration::from_secs(2), 5_000)
    }
}

/// A step's proof that the run is still its own: the version its lease
/// wrote. Checked before each batch of removals, so that a stepper that
/// stalled past its lease, while another finished the run and cleared its
/// marks, removes nothing.
struct Guard {
    version: u64,
}

impl Guard {
    fn check<S: Storage>(&self, st: &S) -> Result<(), RegistryError> {
        match st.kv_get(&keys::gc_run())? {
            Some(entry) if entry.version == self.version => Ok(()),
            _ => Err(RegistryError::internal("garbage collection: another step took this run over")),
        }
    }
}

/// What a step request ends with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// The run (after the step), or the last one; `None` if none ever ran.
    pub run: Option<Run>,
    /// Another stepper holds the run: nothing was done.
    pub busy: bool,
}

fn parse(bytes: &[u8]) -> Result<Run, RegistryError> {
    serde_json::from_slice(bytes).map_err(|e| RegistryError::internal(format!("corrupt garbage collection state: {e}")))
}

fn encode(run: &Run) -> Vec<u8> {
    serde_json::to_vec(run).expect("a run serializes")
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The current or last run, as stored.
pub fn status<S: Storage>(st: &S) -> Result<Option<Run>, RegistryError> {
    st.kv_get(&keys::gc_run())?.map(|e| parse(&e.value)).transpose()
}

/// Takes one step of the run in progress. With no run in progress, starts
/// one if `start` says so (`Some(dry_run)`), else only reports the last.
pub fn step<S: Storage>(
    st: &S,
    settings: &GcSettings,
    start: Option<bool>,
    mut budget: Budget,
) -> Result<Outcome, RegistryError> {
    let now = seconds(st.now());
    let entry = st.kv_get(&keys::gc_run())?;
    let version = entry.as_ref().map(|e| e.version);
    let last = entry.map(|e| parse(&e.value)).transpose()?;
    let mut run = match last {
        Some(run) if run.phase != Phase::Done => run,
        last => match start {
            Some(dry_run) => Run::new(hex(&st.random_bytes(8)), now, settings, dry_run),
            None => return Ok(Outcome { run: last, busy: false }),
        },
    };
    let holder = hex(&st.random_bytes(8));
    if run.leased_to_another(&holder, now) {
        return Ok(Outcome { run: Some(run), busy: true });
    }
    run.lease = Some(Lease { holder, until: now + LEASE_SECS });
    let guard = match st.kv_set_if(&keys::gc_run(), &encode(&run), version) {
        Ok(version) => Guard { version },
        Err(Error::Conflict) => return Ok(Outcome { run: status(st)?, busy: true }),
        Err(e) => return Err(e.into()),
    };
    let worked = work(st, &mut run, &mut budget, &guard);
    run.lease = None;
    if worked.is_ok() {
        run.steps += 1;
        if run.phase == Phase::Done {
            run.finished = Some(seconds(st.now()));
            eprintln!("registry: {}", run.summary());
        }
    }
    // Written back even after a failure: the cursor only ever moves past
    // finished items, and the lease is released for the next step.
    match st.kv_set_if(&keys::gc_run(), &encode(&run), Some(guard.version)) {
        Ok(_) => {}
        Err(Error::Conflict) => {
            return Err(RegistryError::internal("garbage collection: another step took this run over"))
        }
        Err(e) => return Err(e.into()),
    }
    worked?;
    Ok(Outcome { run: Some(run), busy: false })
}

fn work<S: Storage>(st: &S, run: &mut Run, budget: &mut Budget, guard: &Guard) -> Result<(), RegistryError> {
    while run.phase != Phase::Done && !budget.spent() {
        match run.phase {
            Phase::Mark => mark::next_repository(st, run, budget, guard)?,
            Phase::SweepBlobs => sweep::blobs(st, run, budget, guard)?,
            Phase::SweepLinks => sweep::links(st, run, budget, guard)?,
            Phase::ExpireUploads => sweep::uploads(st, run, budget, guard)?,
            Phase::Cleanup => sweep::marks(st, run, budget, guard)?,
            Phase::Done => {}
        }
    }
    Ok(())
}
