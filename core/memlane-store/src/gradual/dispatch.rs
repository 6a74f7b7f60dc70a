//! The driver of a distributed pass: fragments of the pass's pinned version handed to a
//! [`FragmentExecutor`], results committed by the driver alone in groups (one Lance
//! `DataReplacement` each, carrying the state and a checkpoint), every few fragments or
//! checkpoint interval. A commit a writer preempts keeps the results whose fragment
//! still has the data files the worker read and drops the others (the next pass finds
//! their rows on the new head); a failed task is retried on another worker a bounded
//! number of times. Results a killed driver never committed are staged by the workers
//! and reused when their fragment is unchanged, deleted otherwise.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use lance::Dataset;
use lance::dataset::transaction::DataReplacementGroup;
use memlane_core::{ReembedCheckpoint, WorkerStats};

use crate::error::{Result, StoreError};

use super::fragments::{blocking, fragment_files};
use super::remote::{
    FragmentExecutor, FragmentResult, FragmentTask, STAGED, TaskOutcome, staged_name, staged_prefix,
};
use super::replace::{Ready, delete_unreferenced};
use super::{Gradual, Outcome};

/// Tries of one fragment (the first and the retries after a worker failed) before the
/// step stops naming it.
pub(crate) const MAX_TASK_ATTEMPTS: u32 = 3;

/// How long the driver waits for an outcome before it looks at the clock again.
const POLL: Duration = Duration::from_millis(200);

/// Tasks in flight and their tries, for one pass.
#[derive(Default)]
struct Flight {
    queue: VecDeque<u64>,
    running: HashSet<u64>,
    tries: HashMap<u64, u32>,
}

impl Gradual<'_> {
    fn executor_error(&self, e: &crate::embed::EmbedError) -> StoreError {
        StoreError::Executor {
            embedder: self.embedder_name.clone(),
            message: e.to_string(),
        }
    }

    /// The task of fragment `fragment` at `version`.
    fn task(&self, fragment: u64, version: u64, attempt: u32) -> FragmentTask {
        FragmentTask {
            uri: self.store.uri().to_owned(),
            storage: self.store.storage().to_map().into_iter().collect(),
            version,
            fragment,
            space: self.space.clone(),
            source: self.source.clone(),
            embedder: self.embedder_name.clone(),
            batch: self.batch,
            migration: self.migration,
            step: self.step,
            attempt,
        }
    }

    /// Fragments per commit: enough that every worker's result of a round goes into
    /// one commit, and never fewer than four.
    fn remote_group(workers: usize) -> usize {
        workers.max(4)
    }

    /// One pass with the fragments embedded by `ex`'s workers.
    pub(super) async fn pass_remote(
        &mut self,
        ex: Arc<dyn FragmentExecutor>,
        per_frag: &HashMap<u64, u64>,
        cp: &mut ReembedCheckpoint,
        out: &mut Outcome,
        embedded_now: &mut u64,
        started: Instant,
    ) -> Result<()> {
        let r = self
            .remote_loop(ex.as_ref(), per_frag, cp, out, embedded_now, started)
            .await;
        if r.is_err() {
            ex.cancel();
        }
        r
    }

    async fn remote_loop(
        &mut self,
        ex: &dyn FragmentExecutor,
        per_frag: &HashMap<u64, u64>,
        cp: &mut ReembedCheckpoint,
        out: &mut Outcome,
        embedded_now: &mut u64,
        started: Instant,
    ) -> Result<()> {
        let ds = self.store.dataset().clone();
        let version = ds.version_id();
        let pinned = fragment_files(&ds);
        let mut flight = Flight::default();
        let mut frags: Vec<u64> = per_frag.keys().copied().collect();
        frags.sort_unstable();
        flight.queue = frags.into();
        let mut ready = self.staged_results(&ds, &mut flight.queue).await;
        for r in &ready {
            cp.remaining = cp.remaining.saturating_sub(r.rows);
        }
        let limit = ex.workers().max(1) * 2;
        let group = Self::remote_group(ex.workers());
        let mut last_commit = Instant::now();
        loop {
            while flight.running.len() < limit {
                let Some(f) = flight.queue.pop_front() else {
                    break;
                };
                let attempt = flight.tries.entry(f).or_insert(0);
                *attempt += 1;
                let task = self.task(f, version, *attempt);
                ex.submit(&task).map_err(|e| self.executor_error(&e))?;
                flight.running.insert(f);
            }
            if flight.running.is_empty() {
                break;
            }
            match blocking(|| ex.next(POLL)).map_err(|e| self.executor_error(&e))? {
                // a result of a task this pass no longer waits for (retried) is dropped:
                // its twin's is the one committed
                Some(TaskOutcome::Done(r)) if flight.running.remove(&r.fragment) => {
                    self.tally(&r, cp, embedded_now, started);
                    if r.data_file.is_some() {
                        ready.push(r);
                    }
                }
                None | Some(TaskOutcome::Done(_)) => {}
                Some(TaskOutcome::Failed {
                    fragment,
                    worker,
                    error,
                }) => {
                    if !flight.running.remove(&fragment) {
                        continue;
                    }
                    let tries = flight.tries.get(&fragment).copied().unwrap_or(1);
                    tracing::warn!(fragment, worker, tries, error, "fragment task failed");
                    if tries >= MAX_TASK_ATTEMPTS {
                        return Err(StoreError::Worker {
                            fragment,
                            attempts: tries,
                            worker,
                            message: error,
                        });
                    }
                    self.stats.retries += 1;
                    flight.queue.push_front(fragment);
                }
            }
            let due = last_commit.elapsed().as_secs_f64() >= self.checkpoint_secs;
            if ready.len() >= group || (due && !ready.is_empty()) {
                self.commit_results(std::mem::take(&mut ready), cp, out)
                    .await?;
                last_commit = Instant::now();
                // a writer rewrote fragments (an upsert, a compaction): the queued tasks
                // of those would only be dropped at commit; the next pass plans their
                // rows on the new head instead
                let head = self.store.dataset().clone();
                if head.version_id() != version {
                    let now = fragment_files(&head);
                    let before = flight.queue.len();
                    flight.queue.retain(|f| now.get(f) == pinned.get(f));
                    self.stats.dropped += (before - flight.queue.len()) as u64;
                }
            }
        }
        self.commit_results(ready, cp, out).await
    }

    /// Account a worker's result: the checkpoint's counts, the worker's share, progress.
    fn tally(
        &mut self,
        r: &FragmentResult,
        cp: &mut ReembedCheckpoint,
        embedded_now: &mut u64,
        started: Instant,
    ) {
        cp.embedded += r.rows;
        cp.remaining = cp.remaining.saturating_sub(r.rows);
        *embedded_now += r.rows;
        let w = match self.stats.workers.iter_mut().find(|w| w.worker == r.worker) {
            Some(w) => w,
            None => {
                self.stats.workers.push(WorkerStats {
                    worker: r.worker.clone(),
                    ..WorkerStats::default()
                });
                self.stats.workers.last_mut().expect("just pushed")
            }
        };
        w.fragments += 1;
        w.rows += r.rows;
        w.secs += r.secs;
        self.report(cp, *embedded_now, started);
    }

    /// Commit workers' results as one `DataReplacement` (see
    /// [`Gradual::commit_replacements`]); their staged records are spent.
    async fn commit_results(
        &mut self,
        results: Vec<FragmentResult>,
        cp: &mut ReembedCheckpoint,
        out: &mut Outcome,
    ) -> Result<()> {
        let ready: Vec<Ready> = results
            .into_iter()
            .filter_map(|r| {
                r.data_file.map(|f| Ready {
                    group: DataReplacementGroup(r.fragment, f),
                    source_files: r.source_files,
                    rows: r.rows,
                })
            })
            .collect();
        if ready.is_empty() {
            return Ok(());
        }
        let done = self.commit_replacements(ready, cp).await?;
        if done.is_empty() {
            return Ok(());
        }
        out.commits += 1;
        out.embedded += done.iter().map(|r| r.rows).sum::<u64>();
        for r in &done {
            let name = staged_name(self.migration, self.step, r.group.0);
            let _ = self.store.side_files().delete(&name).await;
        }
        Ok(())
    }

    /// Results a killed driver's workers staged for this step: reused (and taken off
    /// `queue`) when their fragment is in this pass with the data files the worker
    /// read; discarded otherwise (the record, and the column file unless some version
    /// since the worker's read references it: the driver may have committed it before
    /// it was killed, and a later commit replaced it).
    async fn staged_results(
        &mut self,
        ds: &Dataset,
        queue: &mut VecDeque<u64>,
    ) -> Vec<FragmentResult> {
        let side = self.store.side_files().clone();
        let prefix = format!("{STAGED}/{}", staged_prefix(self.migration, self.step));
        let names: Vec<String> = side
            .list(STAGED)
            .await
            .unwrap_or_default()
            .into_iter()
            .filter(|n| n.starts_with(&prefix))
            .collect();
        let files = fragment_files(ds);
        let mut reused = Vec::new();
        let mut discarded = Vec::new();
        for name in names {
            let parsed = match side.get(&name).await {
                Ok(Some(f)) => serde_json::from_slice::<FragmentResult>(&f.bytes).ok(),
                _ => None,
            };
            let Some(r) = parsed else {
                let _ = side.delete(&name).await;
                continue;
            };
            let unchanged = files.get(&r.fragment) == Some(&r.source_files);
            match queue.iter().position(|f| *f == r.fragment) {
                Some(at) if unchanged && r.data_file.is_some() => {
                    queue.remove(at);
                    self.stats.reused += 1;
                    reused.push(r);
                }
                _ => {
                    let _ = side.delete(&name).await;
                    discarded.push(r);
                }
            }
        }
        if let Some(since) = discarded.iter().map(|r| r.version).min() {
            let paths = discarded
                .iter()
                .filter_map(|r| r.data_file.as_ref().map(|f| f.path.clone()))
                .collect();
            delete_unreferenced(ds, paths, since).await;
        }
        reused
    }
}
