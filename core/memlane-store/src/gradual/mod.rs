//! Gradual, online, resumable re-embedding (expand -> backfill -> catch-up).
//!
//! The target space has a vector column and a digest column (`<column>__src`: the
//! blake3-128 of the text each vector was embedded from). A row needs embedding when it
//! is live, has source text, and its digest differs from the digest of its current
//! text: new rows, rows whose content changed, rows never embedded. The backfill walks
//! the fragments; each fragment with work is one Lance commit (a `DataReplacement` of
//! the two columns) carrying the state and a checkpoint. Vectors computed inside a
//! fragment are appended to a side file every few seconds, so a killed run re-embeds at
//! most the batch in flight. Passes repeat until one finds nothing to do (catch-up of
//! rows written meanwhile); then the migrator completes the step.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use arrow::datatypes::Schema as ArrowSchema;
use lance::dataset::NewColumnTransform;
use lance::dataset::transaction::Operation;
use memlane_core::ReembedCheckpoint;
use memlane_core::{Action, HistoryEntry, Space, StoreState};

use crate::convert::digest_field;
use crate::embed::Embedder;
use crate::engine::commit::{Conflict, Options, conflict};
use crate::error::{Result, StoreError};
use crate::ops::{Progress, ProgressFn};
use crate::store::{Store, now};

mod count;
mod dispatch;
mod fragments;
mod remote;
mod replace;
mod side;

pub(crate) use count::sample;

/// Vectors by (record id, passage digest of the text they were embedded from).
pub(crate) type SampleVectors = HashMap<(String, [u8; 16]), Vec<f32>>;
pub use remote::{FragmentExecutor, FragmentResult, FragmentTask, TaskOutcome, run_fragment_task};

/// A version at which every live row with source text had a current vector in the
/// target space, each checked when it was produced (by the embedder output checks, or
/// by the writer that supplied it).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Settled {
    pub(crate) version: u64,
    /// Live rows without source text (so without a vector) as of `version`; an upper
    /// bound when later passes only read the rows that changed.
    pub(crate) without_text: u64,
}

/// What a gradual re-embed did.
#[derive(Debug, Clone, Default)]
pub(crate) struct Outcome {
    pub(crate) embedded: u64,
    pub(crate) commits: u64,
    /// Where the last pass left the space.
    pub(crate) settled: Settled,
    /// How it ran: commits, conflicts, retries, workers.
    pub(crate) stats: memlane_core::BackfillStats,
}

/// Inputs of a gradual re-embed.
pub(crate) struct Gradual<'a> {
    pub(crate) store: &'a mut Store,
    /// The migrator's state (with the in-flight migration) to carry in every commit.
    pub(crate) state: StoreState,
    pub(crate) space: Space,
    pub(crate) embedder: Arc<dyn Embedder>,
    pub(crate) embedder_name: String,
    pub(crate) source: String,
    pub(crate) batch: usize,
    pub(crate) throttle: Option<f64>,
    pub(crate) checkpoint_secs: f64,
    /// Settled by an earlier run in the same apply: the first pass then reads only the
    /// rows created or updated after it (later passes always do, after the pass before).
    pub(crate) since: Option<Settled>,
    pub(crate) progress: Option<(ProgressFn, Progress)>,
    /// The new model's vectors the compatibility check computed on its sample, by
    /// (id, passage digest): written as they are instead of asking the model again.
    pub(crate) from_sample: SampleVectors,
    pub(crate) migration: u32,
    pub(crate) step: usize,
    pub(crate) file: String,
    pub(crate) checksum: String,
    /// Workers that embed the fragments (none: this process does).
    pub(crate) executor: Option<Arc<dyn FragmentExecutor>>,
    /// Counted while it runs.
    pub(crate) stats: memlane_core::BackfillStats,
    /// The embedder's call counters when the backfill started (for embedders that
    /// count their requests): the report gives what this backfill asked.
    pub(crate) calls_from: Option<memlane_core::EmbedderCalls>,
}

/// At most this many fragments go into one backfill commit.
const MAX_GROUP_FRAGMENTS: usize = 8;

/// Passes after which a re-embed that still finds work gives up (writers outpace it).
const MAX_PASSES: u32 = 10_000;

/// Retries of one backfill commit that writers keep preempting.
const COMMIT_RETRIES: u32 = 30;

/// Embedded vectors not yet committed are saved to a side file at least this often.
const SAVE_EVERY_SECS: f64 = 1.0;

/// An embedder call at least this slow has its vectors saved right away.
const SLOW_CALL_SECS: f64 = 0.02;

impl Gradual<'_> {
    fn state_with(&self, cp: &ReembedCheckpoint) -> StoreState {
        let mut st = self.state.clone();
        if let Some(f) = st.in_flight.as_mut() {
            f.checkpoint = Some(cp.clone());
        }
        st
    }

    fn entry(&self, cp: &ReembedCheckpoint) -> HistoryEntry {
        let mut e = HistoryEntry::new(Action::Checkpoint, now());
        e.migration = Some(self.migration);
        e.file = Some(self.file.clone());
        e.checksum = Some(self.checksum.clone());
        e.reason = Some(format!(
            "{} pass {} of `{}`: {} embedded, {} remaining",
            cp.phase, cp.pass, cp.space, cp.embedded, cp.remaining
        ));
        e.active_space.clone_from(&self.state.active_space);
        e
    }

    async fn commit(&mut self, op: Operation, cp: &ReembedCheckpoint) -> Result<()> {
        let state = self.state_with(cp);
        let entry = self.entry(cp);
        self.store
            .commit(op, Some(state.clone()), &entry, Options::default())
            .await?;
        self.state = state;
        Ok(())
    }

    /// Run until a pass finds nothing to embed. Resumable at any point.
    pub(crate) async fn run(&mut self) -> Result<Outcome> {
        let mut out = self.passes().await?;
        self.stats.commits = out.commits;
        self.count_calls();
        out.stats = self.stats.clone();
        Ok(out)
    }

    async fn passes(&mut self) -> Result<Outcome> {
        let mut out = Outcome::default();
        let mut cp = self.checkpoint();
        // expand: the digest column (the vector column came with add_space)
        if !self.expand(&mut cp, &mut out).await? {
            // preempted by a writer's append: expand again on the new head
            self.store.refresh_data().await?;
            return Box::pin(self.passes()).await;
        }
        let started = Instant::now();
        let mut embedded_now = 0u64;
        // the version after which the next pass must look (None: look at every row)
        let mut since = self.since;
        for pass in 1.. {
            if pass > MAX_PASSES {
                return Err(StoreError::NotConverging {
                    space: self.space.name.clone(),
                    passes: MAX_PASSES,
                });
            }
            self.store.refresh_data().await?;
            let ds = self.store.dataset().clone();
            let t = Instant::now();
            // the rows this pass looks at (kept for a pass that must look again)
            let scope = since;
            let dropped_before = self.stats.dropped;
            let count = self.count_todo(&ds, since.map(|s| s.version)).await?;
            let remaining = count.remaining();
            tracing::debug!(
                pass,
                remaining,
                secs = t.elapsed().as_secs_f64(),
                "counted rows to embed"
            );
            // rows without text: exact after a full read, an upper bound after a delta
            let without_text = count.without_text + since.map_or(0, |s| s.without_text);
            // once this pass is done, every row as of `ds` has a current vector
            out.settled = Settled {
                version: ds.version_id(),
                without_text,
            };
            since = Some(out.settled);
            // a catch-up pass reads only what changed: its progress stays out of the
            // whole store (done = live rows - remaining), so a bar does not restart at 0
            cp.total = if scope.is_none() {
                count.total
            } else {
                (ds.count_rows(None).await? as u64).max(remaining)
            };
            cp.remaining = remaining;
            cp.pass = cp.pass.max(1);
            if remaining == 0 {
                return Ok(out);
            }
            // under steady writes a pass rarely starts at zero: a pass that starts with
            // at most one batch to do is the last; the migrator completes after it and
            // catches up what arrives meanwhile
            let last_pass = remaining <= self.batch.max(1) as u64;
            cp.phase = if cp.pass <= 1 && out.commits <= 1 && cp.embedded == 0 {
                "backfill".into()
            } else {
                "catch_up".into()
            };
            self.pass(
                &count.per_frag,
                &mut cp,
                &mut out,
                &mut embedded_now,
                started,
            )
            .await?;
            cp.pass += 1;
            if self.stats.dropped > dropped_before {
                // fragments a writer rewrote (a compaction) were left out: their rows
                // kept their row versions, so a pass over what changed since this one
                // started would miss them; the next pass looks at this pass's rows again
                since = scope;
                continue;
            }
            if last_pass {
                return Ok(out);
            }
        }
        Ok(out)
    }

    /// The checkpoint a resumed run continues from (or a fresh one).
    fn checkpoint(&self) -> ReembedCheckpoint {
        self.state
            .in_flight
            .as_ref()
            .and_then(|f| f.checkpoint.clone())
            .filter(|c: &ReembedCheckpoint| c.space == self.space.name)
            .unwrap_or_else(|| ReembedCheckpoint {
                space: self.space.name.clone(),
                ..Default::default()
            })
    }

    /// Add the space's digest column when it is missing (metadata only: all null).
    /// Returns false when a writer's commit preempted it (expand again on the new head).
    async fn expand(&mut self, cp: &mut ReembedCheckpoint, out: &mut Outcome) -> Result<bool> {
        let ds = self.store.dataset().clone();
        if ds.schema().field(&self.space.digest_column()).is_some() {
            return Ok(true);
        }
        cp.phase = "expand".into();
        cp.at = now();
        let out_schema = Arc::new(ArrowSchema::new(vec![digest_field(&self.space)]));
        let mut fragments = Vec::new();
        let mut schema = None;
        for frag in ds.get_fragments() {
            let (m, s) = frag
                .add_columns(NewColumnTransform::AllNulls(out_schema.clone()), None, None)
                .await?;
            fragments.push(m);
            schema = Some(s);
        }
        let schema = match schema {
            Some(s) => s,
            None => {
                let mut s = ds.schema().merge(out_schema.as_ref())?;
                s.set_field_id(ds.manifest().max_field_id().into());
                s
            }
        };
        let op = Operation::Merge {
            fragments,
            schema,
            preserves_nullability: true,
        };
        match self.commit(op, cp).await {
            Ok(()) => {
                out.commits += 1;
                Ok(true)
            }
            Err(e) if conflict(&e) == Some(Conflict::Retryable) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// One pass over the fragments with rows to embed (`per_frag`: rows per fragment),
    /// committed in groups: a checkpoint interval of embedding at the rate seen so far,
    /// or four fragments' worth of rows, whichever comes first (many small fragments
    /// written by live writers then cost one commit, and a fast embedder's group
    /// pipelines reads, embedding and writes across fragments); and never more than a
    /// few fragments, so a conflict with a writer costs a small group.
    async fn pass(
        &mut self,
        per_frag: &HashMap<u64, u64>,
        cp: &mut ReembedCheckpoint,
        out: &mut Outcome,
        embedded_now: &mut u64,
        started: Instant,
    ) -> Result<()> {
        if let Some(ex) = self.executor.clone() {
            return self
                .pass_remote(ex, per_frag, cp, out, embedded_now, started)
                .await;
        }
        let mut frags: Vec<u64> = per_frag.keys().copied().collect();
        frags.sort_unstable();
        let per_commit = 4 * self.state.fragment_rows() as u64;
        let mut group: Vec<u64> = Vec::new();
        let mut rows = 0u64;
        for (k, frag_id) in frags.iter().enumerate() {
            group.push(*frag_id);
            rows += per_frag[frag_id];
            let last = k + 1 == frags.len();
            // a slow embedder commits sooner: the group would take longer than a
            // checkpoint interval at the rate seen so far (unknown: commit)
            #[allow(clippy::cast_precision_loss)]
            let slow =
                cp.rows_per_sec <= 0.0 || rows as f64 / cp.rows_per_sec >= self.checkpoint_secs;
            if !(last || rows >= per_commit || slow || group.len() >= MAX_GROUP_FRAGMENTS) {
                continue;
            }
            let n = self.fragments(&group, cp, embedded_now, started).await?;
            if n > 0 {
                out.commits += 1;
            }
            out.embedded += n;
            group.clear();
            rows = 0;
        }
        Ok(())
    }

    /// What the embedder was asked since the backfill started.
    fn count_calls(&mut self) {
        if let (Some(from), Some(now)) = (self.calls_from, self.embedder.calls()) {
            self.stats.embedder = Some(now.since(&from));
        }
    }

    fn report(&mut self, cp: &mut ReembedCheckpoint, embedded_now: u64, started: Instant) {
        let secs = started.elapsed().as_secs_f64();
        #[allow(clippy::cast_precision_loss)]
        if secs > 0.0 {
            cp.rows_per_sec = embedded_now as f64 / secs;
        }
        self.count_calls();
        if let Some((f, p)) = &self.progress {
            let mut p = p.clone();
            p.total = cp.total;
            p.done = cp.total.saturating_sub(cp.remaining);
            p.rows_per_sec = cp.rows_per_sec;
            p.phase.clone_from(&cp.phase);
            #[allow(clippy::cast_precision_loss)]
            if cp.rows_per_sec > 0.0 {
                p.eta_secs = Some(cp.remaining as f64 / cp.rows_per_sec);
            }
            p.backfill = Some(self.stats.clone());
            f(&p);
        }
    }
}
