//! `/_registry/gc`: `GET` reports the current or last run, `POST` takes one
//! bounded step (starting a run if none is in progress; `?dry-run=true`
//! starts a dry run). Callers repeat the `POST` until `done` is true: one
//! step fits in a request on platforms that cap CPU per request.

use super::{Budget, GcSettings, Outcome};
use crate::error::RegistryError;
use crate::http::Response;
use crate::storage::Storage;

/// Answers the route.
pub fn respond<S: Storage>(
    st: &S,
    settings: &GcSettings,
    step: bool,
    dry_run: bool,
) -> Result<Response<S::Reader>, RegistryError> {
    let outcome = if step {
        super::step(st, settings, Some(dry_run), Budget::default()).inspect_err(|e| {
            // The operator's log says why a collection stopped.
            eprintln!("registry: garbage collection step failed: {e}");
        })?
    } else {
        Outcome { run: super::status(st)?, busy: false }
    };
    let response = Response::json(200, body(&outcome).to_string());
    Ok(match (&settings.result_header, finished(&outcome, step)) {
        (Some(header), Some((blobs, bytes))) => response.header(header, format!("{blobs} {bytes}")),
        _ => response,
    })
}

/// What a step removed when it finished a run that removes (not a dry
/// run): a step never answers a run that was already done, since a step
/// after one starts the next.
fn finished(outcome: &Outcome, step: bool) -> Option<(u64, u64)> {
    let run = outcome.run.as_ref()?;
    (step && !outcome.busy && !run.dry_run && run.phase == super::run::Phase::Done)
        .then_some((run.counts.blobs_removed, run.counts.bytes_removed))
}

/// `{"run": <run or null>, "summary": <its one-line summary>, "busy": bool, "done": bool}`.
fn body(outcome: &Outcome) -> serde_json::Value {
    let done = outcome.run.as_ref().is_none_or(|r| r.phase == super::run::Phase::Done);
    let summary = outcome.run.as_ref().map(|r| r.summary());
    serde_json::json!({ "run": outcome.run, "summary": summary, "busy": outcome.busy, "done": done })
}
