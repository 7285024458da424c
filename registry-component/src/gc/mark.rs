//! The mark phase, one repository at a time: which of its manifests are
//! kept, and the marks (`registry/gc/marks/<run>/live/<digest>`) of every
//! blob a kept manifest uses. One repository is marked within one step.

use super::run::{Phase, Run};
use super::{fence, Budget, Guard};
use crate::api::links::ManifestLink;
use crate::error::RegistryError;
use crate::oci::digest::Digest;
use crate::oci::manifest::{self, MAX_MANIFEST_SIZE};
use crate::oci::name::RepoName;
use crate::storage::{Storage, StorageExt};
use crate::store::keys;
use std::collections::{BTreeMap, HashSet};

const PAGE: u32 = 1000;

/// Marks the repository after the run's cursor, or ends the phase.
pub fn next_repository<S: Storage>(
    st: &S,
    run: &mut Run,
    budget: &mut Budget,
    guard: &Guard,
) -> Result<(), RegistryError> {
    let page = st.list(&keys::catalog_prefix(), run.cursor.as_deref(), 1)?;
    let Some(key) = page.into_iter().next() else {
        run.enter(Phase::SweepBlobs);
        budget.spend(1);
        return Ok(());
    };
    if let Some(repo) = keys::name_from_catalog_key(&key) {
        let items = repository(st, run, &repo, guard)?;
        budget.spend(items.max(1));
        run.counts.repositories += 1;
    }
    run.cursor = Some(key);
    Ok(())
}

/// A manifest link as the mark phase saw it.
struct Linked {
    link: Option<ManifestLink>,
    version: u64,
}

/// Every key under `prefix`.
fn all_keys<S: Storage>(st: &S, prefix: &str) -> Result<Vec<String>, RegistryError> {
    let mut keys = Vec::new();
    loop {
        let page = st.list(prefix, keys.last().map(String::as_str), PAGE)?;
        let full = page.len() == PAGE as usize;
        keys.extend(page);
        if !full {
            return Ok(keys);
        }
    }
}

/// Marks what `repo` keeps; returns the number of manifests walked.
fn repository<S: Storage>(st: &S, run: &mut Run, repo: &RepoName, guard: &Guard) -> Result<u64, RegistryError> {
    let mut manifests = BTreeMap::new();
    for key in all_keys(st, &keys::manifest_links_prefix(repo))? {
        let Some(digest) = keys::digest_from_manifest_link(repo, &key) else { continue };
        let Some(entry) = st.kv_get(&key)? else { continue };
        // A link that does not parse is kept, whatever the policy.
        let link = serde_json::from_slice::<ManifestLink>(&entry.value).ok();
        manifests.insert(digest, Linked { link, version: entry.version });
    }
    let roots: Vec<Digest> = if run.delete_untagged {
        let mut roots = tagged(st, repo)?;
        roots.extend(
            manifests
                .iter()
                .filter(|(_, m)| m.link.as_ref().is_none_or(|l| l.pushed.unwrap_or(0) >= run.cutoff))
                .map(|(d, _)| d.clone()),
        );
        roots
    } else {
        manifests.keys().cloned().collect()
    };

    let mut kept = HashSet::new();
    let mut live = HashSet::new();
    let mut todo = roots;
    while let Some(digest) = todo.pop() {
        let Some(linked) = manifests.get(&digest) else { continue };
        if !kept.insert(digest.clone()) {
            continue;
        }
        live.insert(digest.clone());
        let media_type = linked.link.as_ref().map(|l| l.media_type.as_str());
        match st.blob_bytes(digest.as_str(), MAX_MANIFEST_SIZE as u64)? {
            Some(bytes) => match manifest::parse(media_type, &bytes) {
                Ok(parsed) => {
                    live.extend(parsed.blobs);
                    todo.extend(parsed.manifests);
                }
                Err(e) => eprintln!("registry: gc: manifest {repo}@{digest} does not parse ({}); kept", e.detail()),
            },
            None => eprintln!("registry: gc: manifest {repo}@{digest} is linked but its bytes are missing"),
        }
        if run.delete_untagged {
            // Referrers are kept while their subject is.
            for key in all_keys(st, &keys::referrers_prefix(repo, &digest))? {
                todo.extend(keys::referrer_from_key(repo, &digest, &key));
            }
        }
    }
    for digest in &live {
        st.set_if_absent(&keys::gc_live(&run.id, digest), b"")?;
    }
    run.counts.manifests_kept += kept.len() as u64;

    let doomed: Vec<_> = manifests.iter().filter(|(d, _)| !kept.contains(*d)).collect();
    if !doomed.is_empty() {
        remove_untagged(st, run, repo, &doomed, guard)?;
    }
    Ok(manifests.len() as u64)
}

/// Digests the tags of `repo` point at.
fn tagged<S: Storage>(st: &S, repo: &RepoName) -> Result<Vec<Digest>, RegistryError> {
    let mut digests = Vec::new();
    for key in all_keys(st, &keys::tags_prefix(repo))? {
        if let Some(value) = st.get(&key)? {
            digests.extend(String::from_utf8(value).ok().and_then(|s| s.parse().ok()));
        }
    }
    Ok(digests)
}

/// Unlinks the manifests nothing keeps, behind the repository's fence; a
/// link written again since the mark read it (a new push) stays.
fn remove_untagged<S: Storage>(
    st: &S,
    run: &mut Run,
    repo: &RepoName,
    doomed: &[(&Digest, &Linked)],
    guard: &Guard,
) -> Result<(), RegistryError> {
    if run.dry_run {
        for (digest, _) in doomed {
            run.counts.manifests_removed += 1;
            run.would_remove(format!("{repo}@{digest}"));
        }
        return Ok(());
    }
    guard.check(st)?;
    fence::raise(st, repo)?;
    let removed = (|| {
        let mut removed = 0;
        for (digest, linked) in doomed {
            let key = keys::manifest_link(repo, digest);
            if st.kv_get(&key)?.map(|e| e.version) != Some(linked.version) {
                continue;
            }
            let subject = linked.link.as_ref().and_then(|l| l.subject.as_deref()).and_then(|s| s.parse().ok());
            if let Some(subject) = subject {
                st.delete(&keys::referrer(repo, &subject, digest))?;
            }
            st.delete(&key)?;
            removed += 1;
        }
        Ok::<_, RegistryError>(removed)
    })();
    fence::lower(st, repo)?;
    run.counts.manifests_removed += removed?;
    Ok(())
}
