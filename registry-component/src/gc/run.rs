//! A collection's state, kept in kv (`registry/gc/run`) so that one run
//! spreads over many short requests and survives the instance running it.
//!
//! Each step takes a lease on the run (a conditional write on its
//! version), works until its budget is spent, and writes the run back with
//! its cursor moved. A second stepper finds the lease and answers "busy";
//! a lease older than [`LEASE_SECS`] was left by a stepper that stopped,
//! and the next step takes it over. Every step's work is idempotent, so a
//! step cut short is simply done again.

use serde::{Deserialize, Serialize};

/// How long a lease holds: a step's budget is two seconds, and a step that
/// overruns this is only joined by another, never undone. Short, because a
/// step cut by a crash holds the run until its lease runs out.
pub const LEASE_SECS: u64 = 30;

/// Where a run is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Phase {
    /// Walking repositories: marking what their manifests use (and, with
    /// delete-untagged, removing the manifests nothing keeps).
    Mark,
    /// Walking the blob store: removing unmarked blobs older than the cutoff.
    SweepBlobs,
    /// Walking repositories: removing links to blobs that are gone.
    SweepLinks,
    /// Walking uploads: aborting the abandoned ones.
    ExpireUploads,
    /// Removing the run's marks.
    Cleanup,
    /// Finished; the state stays as the last run's report.
    Done,
}

/// What a run found and removed (or, in a dry run, would remove).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Counts {
    /// Repositories walked.
    pub repositories: u64,
    /// Manifests kept.
    pub manifests_kept: u64,
    /// Untagged manifests removed.
    pub manifests_removed: u64,
    /// Blobs removed and their bytes.
    pub blobs_removed: u64,
    /// Bytes of the blobs removed.
    pub bytes_removed: u64,
    /// Blob links to removed blobs, removed from repositories.
    pub links_removed: u64,
    /// Abandoned uploads aborted.
    pub uploads_removed: u64,
    /// Bytes of the uploads aborted.
    pub upload_bytes_removed: u64,
}

/// A stepper's hold on the run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lease {
    /// Random id of the stepper.
    pub holder: String,
    /// Until when, seconds since the epoch.
    pub until: u64,
}

/// One collection.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Run {
    /// Random id (names the run's marks).
    pub id: String,
    /// Start, seconds since the epoch.
    pub started: u64,
    /// Blobs touched and manifests pushed before this (start minus the
    /// grace period) may be collected; nothing newer is.
    pub cutoff: u64,
    /// Uploads last appended to before this are abandoned.
    pub upload_cutoff: u64,
    /// Removes nothing; counts and lists what it would remove.
    pub dry_run: bool,
    /// Removes untagged manifests too.
    pub delete_untagged: bool,
    /// Where it is.
    pub phase: Phase,
    /// The last item the phase finished (a catalog key, a digest, an
    /// upload id); `None` at the phase's start.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cursor: Option<String>,
    /// Found and removed so far.
    pub counts: Counts,
    /// A dry run's first digests it would remove (blobs, then manifests as
    /// `<repository>@<digest>`), at most [`WOULD_REMOVE_LIMIT`].
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub would_remove: Vec<String>,
    /// Steps taken.
    pub steps: u64,
    /// When it finished.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished: Option<u64>,
    /// The stepper working on it, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lease: Option<Lease>,
}

/// Most entries a dry run lists.
pub const WOULD_REMOVE_LIMIT: usize = 100;

impl Run {
    /// A new run starting `now` (seconds since the epoch).
    pub fn new(id: String, now: u64, settings: &super::GcSettings, dry_run: bool) -> Run {
        Run {
            id,
            started: now,
            cutoff: now.saturating_sub(settings.grace.as_secs()),
            upload_cutoff: now.saturating_sub(settings.upload_max_age.as_secs()),
            dry_run,
            delete_untagged: settings.delete_untagged,
            phase: Phase::Mark,
            cursor: None,
            counts: Counts::default(),
            would_remove: Vec::new(),
            steps: 0,
            finished: None,
            lease: None,
        }
    }

    /// Records something a dry run would remove.
    pub fn would_remove(&mut self, what: String) {
        if self.would_remove.len() < WOULD_REMOVE_LIMIT {
            self.would_remove.push(what);
        }
    }

    /// Moves to `phase` from its start.
    pub fn enter(&mut self, phase: Phase) {
        self.phase = phase;
        self.cursor = None;
    }

    /// Whether a stepper other than `holder` holds a live lease at `now`.
    pub fn leased_to_another(&self, holder: &str, now: u64) -> bool {
        self.lease.as_ref().is_some_and(|l| l.holder != holder && l.until > now)
    }

    /// The one-line summary a finished run logs.
    pub fn summary(&self) -> String {
        let c = &self.counts;
        let verb = if self.dry_run { "would remove" } else { "removed" };
        format!(
            "garbage collection {} ({}): {} repositories, {} manifests kept; {verb} {} untagged manifests, \
             {} blobs ({} bytes), {} blob links, {} abandoned uploads ({} bytes)",
            self.id,
            if self.dry_run { "dry run" } else { "run" },
            c.repositories,
            c.manifests_kept,
            c.manifests_removed,
            c.blobs_removed,
            c.bytes_removed,
            c.links_removed,
            c.uploads_removed,
            c.upload_bytes_removed,
        )
    }
}
