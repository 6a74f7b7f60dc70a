//! Committing fragments' new columns (one process or workers alike): a group of
//! fragments is one Lance `DataReplacement` carrying the state and a checkpoint.
//!
//! A fragment's columns are valid only while the fragment still has the data files they
//! were computed from (a new deletion file does not move rows; an upsert's or a
//! compaction's rewrite does). Before every attempt the group is checked against the
//! version the commit builds on, so a fragment a writer rewrote or compacted away is
//! dropped (the next pass finds its rows on the new head) instead of failing the commit:
//! Lance rejects a replacement of a fragment its read version lacks, and reports one
//! a concurrent compaction removed as an incompatible transaction.

use std::collections::HashSet;

use lance::Dataset;
use lance::dataset::transaction::{DataReplacementGroup, Operation};
use memlane_core::ReembedCheckpoint;

use crate::engine::commit::{Backoff, Conflict, conflict};
use crate::error::Result;
use crate::store::now;

use super::fragments::fragment_files;
use super::remote::staged_name;
use super::{COMMIT_RETRIES, Gradual};

/// A fragment's new columns, written and ready to commit.
#[derive(Debug, Clone)]
pub(super) struct Ready {
    /// The fragment and its new data file.
    pub(super) group: DataReplacementGroup,
    /// The fragment's data files the columns were computed from.
    pub(super) source_files: Vec<String>,
    /// Rows of the fragment re-embedded.
    pub(super) rows: u64,
}

impl Gradual<'_> {
    /// Commit `ready` as one `DataReplacement` (retried over writers' commits, dropping
    /// the fragments they rewrote); returns the fragments committed.
    pub(super) async fn commit_replacements(
        &mut self,
        mut ready: Vec<Ready>,
        cp: &mut ReembedCheckpoint,
    ) -> Result<Vec<Ready>> {
        let mut backoff = Backoff::new(COMMIT_RETRIES);
        loop {
            self.drop_rewritten(&mut ready).await;
            if ready.is_empty() {
                return Ok(ready);
            }
            cp.at = now();
            let replacements = ready.iter().map(|r| r.group.clone()).collect();
            let e = match self
                .commit(Operation::DataReplacement { replacements }, cp)
                .await
            {
                Ok(()) => return Ok(ready),
                Err(e) => e,
            };
            let again = match conflict(&e) {
                // a concurrent rewrite (a compaction) removed a target fragment: drop it
                // and commit the others, unless nothing changed under us (each round
                // drops a fragment, so this ends)
                Some(Conflict::Fatal) => {
                    self.store.refresh_data().await?;
                    self.drop_rewritten(&mut ready).await > 0
                }
                Some(Conflict::Retryable) => {
                    let r = backoff.retry(&e).await;
                    if r {
                        self.store.refresh_data().await?;
                    }
                    r
                }
                None => false,
            };
            if !again {
                return Err(e);
            }
            self.stats.conflicts += 1;
        }
    }

    /// Take out of `ready` the fragments whose data files at the store's current version
    /// differ from those their columns were computed from; their column files (never
    /// committed) and staged records are deleted. Returns how many were dropped.
    async fn drop_rewritten(&mut self, ready: &mut Vec<Ready>) -> usize {
        let head = self.store.dataset().clone();
        let files = fragment_files(&head);
        let (keep, gone): (Vec<Ready>, Vec<Ready>) = std::mem::take(ready)
            .into_iter()
            .partition(|r| files.get(&r.group.0) == Some(&r.source_files));
        *ready = keep;
        if gone.is_empty() {
            return 0;
        }
        self.stats.dropped += gone.len() as u64;
        for r in &gone {
            let name = staged_name(self.migration, self.step, r.group.0);
            let _ = self.store.side_files().delete(&name).await;
        }
        let paths = gone.iter().map(|r| r.group.1.path.clone()).collect();
        delete_unreferenced(&head, paths, head.version_id()).await;
        gone.len()
    }
}

/// Delete column files no version after `since` (up to `head`) references: files a
/// worker or this process wrote that were never committed. When a version cannot be
/// read, nothing is deleted (an orphan costs bytes; a wrong deletion would cost a
/// version).
pub(super) async fn delete_unreferenced(head: &Dataset, paths: Vec<String>, since: u64) {
    let mut referenced: HashSet<String> = head
        .fragments()
        .iter()
        .flat_map(|f| f.files.iter().map(|d| d.path.clone()))
        .collect();
    for v in since + 1..head.version_id() {
        let Ok(ds) = head.checkout_version(v).await else {
            return;
        };
        for f in ds.fragments().iter() {
            referenced.extend(f.files.iter().map(|d| d.path.clone()));
        }
    }
    let Ok(store) = head.object_store(None).await else {
        return;
    };
    for p in paths.iter().filter(|p| !referenced.contains(*p)) {
        let _ = store
            .delete(&head.data_dir().clone().join(p.as_str()))
            .await;
    }
}
