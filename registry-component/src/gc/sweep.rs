//! The phases after the mark: blobs, links, uploads, and the marks
//! themselves.

use super::run::{Phase, Run};
use super::{Budget, Guard};
use crate::error::RegistryError;
use crate::oci::digest::Digest;
use crate::storage::{Error, Storage, StorageExt, Upload};
use crate::store::keys;

const PAGE: u32 = 200;

/// Removes one page of unmarked blobs untouched since the cutoff.
pub fn blobs<S: Storage>(st: &S, run: &mut Run, budget: &mut Budget, guard: &Guard) -> Result<(), RegistryError> {
    let page = st.blob_list(run.cursor.as_deref(), PAGE)?;
    guard.check(st)?;
    for blob in &page {
        let Ok(digest) = blob.digest.parse::<Digest>() else { continue };
        if blob.touched >= run.cutoff || st.exists(&keys::gc_live(&run.id, &digest))? {
            continue;
        }
        if run.dry_run {
            st.set(&keys::gc_doomed(&run.id, &digest), b"")?;
            run.would_remove(digest.to_string());
        } else if !st.blob_delete_if_older(digest.as_str(), run.cutoff)? {
            // Touched since it was listed: in use again.
            continue;
        }
        run.counts.blobs_removed += 1;
        run.counts.bytes_removed += blob.size;
    }
    budget.spend(page.len() as u64 + 1);
    match page.last() {
        Some(last) if page.len() == PAGE as usize => run.cursor = Some(last.digest.clone()),
        _ => run.enter(Phase::SweepLinks),
    }
    Ok(())
}

/// Removes, in the repository after the cursor, the links to blobs that
/// are gone (in a dry run: counts those to blobs it would remove).
pub fn links<S: Storage>(st: &S, run: &mut Run, budget: &mut Budget, guard: &Guard) -> Result<(), RegistryError> {
    let page = st.list(&keys::catalog_prefix(), run.cursor.as_deref(), 1)?;
    let Some(key) = page.into_iter().next() else {
        run.enter(Phase::ExpireUploads);
        budget.spend(1);
        return Ok(());
    };
    let Some(repo) = keys::name_from_catalog_key(&key) else {
        run.cursor = Some(key);
        return Ok(());
    };
    let prefix = keys::blob_links_prefix(&repo);
    let mut after: Option<String> = None;
    loop {
        let links = st.list(&prefix, after.as_deref(), 1000)?;
        guard.check(st)?;
        for link in &links {
            let Some(digest) = keys::digest_from_blob_link(&repo, link) else { continue };
            if st.exists(&keys::gc_live(&run.id, &digest))? {
                continue;
            }
            if run.dry_run {
                if st.exists(&keys::gc_doomed(&run.id, &digest))? {
                    run.counts.links_removed += 1;
                }
                continue;
            }
            if st.blob_size(&digest)?.is_some() {
                continue;
            }
            st.delete(link)?;
            // A push may have stored the blob again meanwhile and relied on
            // the link (it commits, then links): then the link stays.
            if st.blob_size(&digest)?.is_some() {
                st.set_if_absent(link, b"")?;
            } else {
                run.counts.links_removed += 1;
            }
        }
        budget.spend(links.len() as u64);
        match links.last() {
            Some(last) if links.len() == 1000 => after = Some(last.clone()),
            _ => break,
        }
    }
    budget.spend(1);
    run.cursor = Some(key);
    Ok(())
}

/// Aborts one page of uploads idle since before the run's upload cutoff.
pub fn uploads<S: Storage>(st: &S, run: &mut Run, budget: &mut Budget, guard: &Guard) -> Result<(), RegistryError> {
    let page = st.list_uploads(run.cursor.as_deref(), PAGE)?;
    guard.check(st)?;
    for upload in &page {
        if upload.modified >= run.upload_cutoff {
            continue;
        }
        if !run.dry_run {
            match st.resume_upload(&upload.id) {
                Ok(handle) => handle.abort()?,
                // Committed or aborted since it was listed.
                Err(Error::NotFound) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        run.counts.uploads_removed += 1;
        run.counts.upload_bytes_removed += upload.size;
    }
    budget.spend(page.len() as u64 + 1);
    match page.last() {
        Some(last) if page.len() == PAGE as usize => run.cursor = Some(last.id.clone()),
        _ => run.enter(Phase::Cleanup),
    }
    Ok(())
}

/// Removes a page of marks: this run's, and any a stopped run left (only
/// one run is ever in progress, and the guard says it is this one).
pub fn marks<S: Storage>(st: &S, run: &mut Run, budget: &mut Budget, guard: &Guard) -> Result<(), RegistryError> {
    let page = st.list(&keys::gc_marks_prefix(), None, 1000)?;
    guard.check(st)?;
    for key in &page {
        st.delete(key)?;
    }
    budget.spend(page.len() as u64 + 1);
    if page.is_empty() {
        run.enter(Phase::Done);
    }
    Ok(())
}
