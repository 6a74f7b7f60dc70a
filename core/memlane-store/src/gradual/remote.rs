//! Fragments embedded by workers elsewhere (a Ray actor pool, issue 17): the unit of
//! work a driver hands out, what a worker returns, the executor a driver talks to, and
//! the worker's side of the job.
//!
//! A worker opens the store at the pass's pinned version, reads one fragment's rows that
//! need embedding (the same digest test as one process), embeds them with its own model,
//! checks every vector, writes the fragment's two new columns as data files (not
//! committed) and returns their metadata. Only the driver commits. A worker also
//! records its result under `_memlane/staged/`, so a driver killed before committing
//! it reuses the files instead of paying for the embedding again, when (and only when)
//! the fragment's data files are still those the worker read.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use lance::Dataset;
use lance::table::format::DataFile;
use memlane_core::Space;
use serde::{Deserialize, Serialize};

use crate::embed::{EmbedError, Embedder};
use crate::error::{Result, StoreError};
use crate::sidecar::SideFiles;

use super::fragments::{FragmentReader, blocking, fragment_files};

/// Side files of staged fragment results: `staged/m<migration>-s<step>-f<fragment>.json`.
pub(crate) const STAGED: &str = "staged";

/// The side-file name of a staged fragment result.
pub(crate) fn staged_name(migration: u32, step: usize, fragment: u64) -> String {
    format!(
        "{}/{}f{fragment}.json",
        STAGED,
        staged_prefix(migration, step)
    )
}

/// The prefix (inside `staged/`) of a step's staged results.
pub(crate) fn staged_prefix(migration: u32, step: usize) -> String {
    format!("m{migration:04}-s{step}-")
}

/// One fragment of a re-embed pass, for a worker: where the store is, the version the
/// pass pinned, the space and source column, and the embedder's name and batch size.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FragmentTask {
    /// The store's URI.
    pub uri: String,
    /// Object-store options (the keys pylance takes); travel to the workers in memory
    /// only, never into reports or history.
    #[serde(default)]
    pub storage: BTreeMap<String, String>,
    /// The version the pass pinned: the worker reads the fragment as of it.
    pub version: u64,
    /// Fragment id.
    pub fragment: u64,
    /// The target space (dimension, metric, passage prefix: what the checks need).
    pub space: Space,
    /// The text column embedded.
    pub source: String,
    /// The embedder's name in the migration (for messages).
    pub embedder: String,
    /// Texts per embedder call.
    pub batch: usize,
    /// Migration id and step index (names the staged result).
    pub migration: u32,
    /// 0-based step.
    pub step: usize,
    /// 1 for the first try, then 2, 3, ... after a worker failed on it.
    pub attempt: u32,
}

/// What a worker did with a [`FragmentTask`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FragmentResult {
    /// Fragment id.
    pub fragment: u64,
    /// The version it read.
    pub version: u64,
    /// The fragment's data files at that version: the result may be committed only
    /// while they are unchanged.
    pub source_files: Vec<String>,
    /// The data file with the two new columns; none when nothing needed embedding.
    pub data_file: Option<DataFile>,
    /// Rows of the fragment re-embedded.
    pub rows: u64,
    /// Seconds the worker spent (read, embed, write).
    pub secs: f64,
    /// The worker's name (from the executor; empty when it gave none).
    #[serde(default)]
    pub worker: String,
}

/// What a finished task came to.
#[derive(Debug, Clone)]
pub enum TaskOutcome {
    /// The worker returned a result.
    Done(FragmentResult),
    /// The worker failed or died on the fragment (the driver retries it a bounded
    /// number of times, then stops the step naming the fragment).
    Failed {
        /// Fragment id.
        fragment: u64,
        /// Which worker.
        worker: String,
        /// What went wrong.
        error: String,
    },
}

/// Runs [`FragmentTask`]s on workers (for example a pool of Ray actors, each with its
/// own model). The driver submits tasks and collects outcomes in any order; it never
/// has more than twice [`workers`](Self::workers) tasks outstanding.
pub trait FragmentExecutor: Send + Sync {
    /// Workers available (sets how many tasks are kept in flight).
    fn workers(&self) -> usize;
    /// Start a task; must not block on its completion.
    fn submit(&self, task: &FragmentTask) -> std::result::Result<(), EmbedError>;
    /// The next finished task, waiting up to `timeout`; `None` when none finished.
    fn next(&self, timeout: Duration) -> std::result::Result<Option<TaskOutcome>, EmbedError>;
    /// Forget every task in flight (the driver is stopping); their results, if any,
    /// stay staged for the next run.
    fn cancel(&self) {}
}

/// Open the store's dataset at `version`.
async fn dataset_at(task: &FragmentTask) -> Result<Dataset> {
    lance::dataset::builder::DatasetBuilder::from_uri(&task.uri)
        .with_storage_options(task.storage.clone().into_iter().collect::<HashMap<_, _>>())
        .with_version(task.version)
        .load()
        .await
        .map_err(Into::into)
}

/// The worker's side: read fragment `task.fragment` as of `task.version`, embed the rows
/// that need it with `embedder` (output checked as in one process), write the two new
/// columns and stage the result for the driver. Nothing is committed.
///
/// # Errors
/// The embedder's failure (naming the batch and its first record), a vector that fails
/// the checks, or a storage error.
pub async fn run_fragment_task(
    task: &FragmentTask,
    embedder: &dyn Embedder,
) -> Result<FragmentResult> {
    let started = Instant::now();
    let ds = Arc::new(dataset_at(task).await?);
    let source_files = fragment_files(&ds)
        .remove(&task.fragment)
        .unwrap_or_default();
    let reader = FragmentReader {
        ds: ds.clone(),
        space: task.space.clone(),
        source: task.source.clone(),
    };
    let mut result = FragmentResult {
        fragment: task.fragment,
        version: task.version,
        source_files,
        data_file: None,
        rows: 0,
        secs: 0.0,
        worker: String::new(),
    };
    if let Some(mut p) = reader.read(task.fragment).await? {
        blocking(|| p.embed_all(&task.embedder, embedder, task.batch))?;
        let (group, rows, _) = p.write().await?.ok_or_else(|| {
            StoreError::Internal("a fragment write ended without a result".into())
        })?;
        result.data_file = Some(group.1);
        result.rows = rows;
        let side = SideFiles::of(&ds, &task.uri).await?;
        side.put(
            &staged_name(task.migration, task.step, task.fragment),
            serde_json::to_vec(&result)
                .map_err(|e| StoreError::Internal(format!("staged result: {e}")))?,
        )
        .await?;
    }
    result.secs = started.elapsed().as_secs_f64();
    Ok(result)
}
