//! Every memlane commit: the state (when it changes), the history entry and the seal as
//! transaction properties; conflicts classified; retryable ones retried with backoff.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use lance::Dataset;
use lance::dataset::CommitBuilder;
use lance::dataset::transaction::{Operation, Transaction, TransactionBuilder};
use memlane_core::seal::SEAL_KEY;
use memlane_core::state::{ENTRY_KEY, STATE_KEY};
use memlane_core::{HistoryEntry, Link, Seal, StoreState};

use crate::engine::{files, record};
use crate::error::{Result, StoreError};

/// What a commit records about itself: the state after it (only commits that change the
/// state carry one; writers' commits never do, so they cannot overwrite a migration's
/// state) and its history entry.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Record<'a> {
    /// The whole state after the commit, when the commit changes it.
    pub(crate) state: Option<&'a StoreState>,
    /// The commit's history entry.
    pub(crate) entry: &'a HistoryEntry,
}

/// How a failed commit may go on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Conflict {
    /// Another commit preempted this one: build it again on the new head.
    Retryable,
    /// Another commit made this one impossible.
    Fatal,
}

/// Classify a commit failure (none: not a conflict).
pub(crate) fn conflict(e: &StoreError) -> Option<Conflict> {
    match e {
        // `CommitConflict`: Lance lost the manifest race on every one of its own attempts
        StoreError::Lance(
            lance::Error::RetryableCommitConflict { .. }
            | lance::Error::CommitConflict { .. }
            | lance::Error::TooMuchWriteContention { .. },
        ) => Some(Conflict::Retryable),
        StoreError::Lance(lance::Error::IncompatibleTransaction { .. }) => Some(Conflict::Fatal),
        _ => None,
    }
}

/// Backoff between attempts of a commit that other commits keep preempting: jittered
/// exponential from 20 ms, capped at 2 s, for a bounded number of attempts.
#[derive(Debug)]
pub(crate) struct Backoff {
    attempt: u32,
    max: u32,
}

impl Backoff {
    /// Up to `max` retries.
    pub(crate) fn new(max: u32) -> Self {
        Backoff { attempt: 0, max }
    }

    /// Retries so far.
    pub(crate) fn retries(&self) -> u32 {
        self.attempt
    }

    /// Whether `e` is a retryable conflict with attempts left; sleeps before saying yes.
    pub(crate) async fn retry(&mut self, e: &StoreError) -> bool {
        if conflict(e) != Some(Conflict::Retryable) || self.attempt >= self.max {
            return false;
        }
        self.attempt += 1;
        let base = 20u64.saturating_mul(1 << self.attempt.min(7)).min(2000);
        // full jitter: writers that collided once do not collide again in lockstep
        let jitter = (uuid::Uuid::new_v4().as_u128() % 1000) as u64;
        tokio::time::sleep(Duration::from_millis(base / 2 + base * jitter / 2000)).await;
        true
    }
}

/// The transaction properties of a commit on `base` (none: a new dataset) adding `op`.
pub(crate) async fn properties(
    base: Option<&Dataset>,
    op: &Operation,
    rec: Record<'_>,
    prev: Option<Link>,
    files: Option<std::collections::BTreeMap<String, memlane_core::FileDigest>>,
) -> Result<HashMap<String, String>> {
    let files = match (files, base) {
        (Some(f), _) => f,
        (None, Some(b)) => files::added_digests(b, op).await?,
        (None, None) => std::collections::BTreeMap::new(),
    };
    let state = rec.state.map(StoreState::to_json);
    let entry = serde_json::to_string(rec.entry)
        .map_err(|e| StoreError::Internal(format!("history entry cannot be encoded: {e}")))?;
    let seal = Seal::new(prev, state.as_deref(), &entry, files);
    let mut p = HashMap::from([
        (ENTRY_KEY.to_owned(), entry),
        (SEAL_KEY.to_owned(), seal.to_json()),
    ]);
    if let Some(s) = state {
        p.insert(STATE_KEY.to_owned(), s);
    }
    Ok(p)
}

/// Seal `tx` (built on `base`) with `rec`: sets its properties.
pub(crate) async fn seal(base: &Dataset, tx: &mut Transaction, rec: Record<'_>) -> Result<()> {
    let prev = record::tip(base).await?;
    let props = properties(Some(base), &tx.operation, rec, prev, None).await?;
    tx.transaction_properties = Some(Arc::new(props));
    Ok(())
}

/// Options of [`commit`].
#[derive(Debug, Default)]
pub(crate) struct Options {
    /// Commit outside the main line (a staged version for checks or a dry run).
    pub(crate) detached: bool,
    /// Rows a merge-insert touched (lets Lance rebase it over concurrent commits).
    pub(crate) affected_rows: Option<lance::dataset::scanner::RowAddrTreeMap>,
}

/// Commit `op` on `base`, sealed with `rec`. One attempt: the caller decides how to
/// rebuild the operation on a retryable conflict (see [`Backoff`]).
pub(crate) async fn commit(
    base: &Arc<Dataset>,
    op: Operation,
    rec: Record<'_>,
    opts: Options,
) -> Result<Dataset> {
    let mut tx = TransactionBuilder::new(base.version_id(), op).build();
    seal(base, &mut tx, rec).await?;
    commit_sealed(base, tx, opts).await
}

/// [`commit`] with the digests of the files `op` adds already taken (a staged step is
/// committed detached, checked, then committed on the main line: its files are hashed
/// once).
pub(crate) async fn commit_with_files(
    base: &Arc<Dataset>,
    op: Operation,
    rec: Record<'_>,
    files: std::collections::BTreeMap<String, memlane_core::FileDigest>,
    opts: Options,
) -> Result<Dataset> {
    let prev = record::tip(base).await?;
    let props = properties(Some(base), &op, rec, prev, Some(files)).await?;
    let tx = TransactionBuilder::new(base.version_id(), op)
        .transaction_properties(Some(Arc::new(props)))
        .build();
    commit_sealed(base, tx, opts).await
}

/// Seal and commit a transaction a writer built (an upsert's merge, a delete): it
/// carries the entry only, never the state.
pub(crate) async fn commit_writer_tx(
    base: &Arc<Dataset>,
    mut tx: Transaction,
    entry: &HistoryEntry,
    affected_rows: Option<lance::dataset::scanner::RowAddrTreeMap>,
) -> Result<Dataset> {
    let rec = Record { state: None, entry };
    seal(base, &mut tx, rec).await?;
    let opts = Options {
        detached: false,
        affected_rows,
    };
    commit_sealed(base, tx, opts).await
}

/// Commit a transaction already sealed with [`seal`].
pub(crate) async fn commit_sealed(
    base: &Arc<Dataset>,
    tx: Transaction,
    opts: Options,
) -> Result<Dataset> {
    let mut cb = CommitBuilder::new(base.clone()).with_detached(opts.detached);
    if let Some(rows) = opts.affected_rows {
        cb = cb.with_affected_rows(rows);
    }
    let seal = record::seal_hash(&tx);
    let ds = cb.execute(tx).await?;
    if !opts.detached {
        record::note_head(&ds, seal).await;
    }
    Ok(ds)
}
