//! Rehearsal: a pending migration applied for real on a branch of the store, with the
//! real embedders, and reported (gates, invariants, context loss, duration, embedder
//! cost); the store itself is not touched. For big stores the branch can be cut to an
//! evenly spread sample first, and the duration and cost are extrapolated to the whole.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use arrow::array::AsArray;
use futures::TryStreamExt;
use memlane_core::{Action, ApplyReport, EmbedderCalls, ErrorKind, HistoryEntry};
use serde::Serialize;

use crate::embed::Embedder;
use crate::engine::commit::Options;
use crate::error::{Result, StoreError};
use crate::readers::MigrationFolder;
use crate::store::{Store, now};

/// How to rehearse.
#[derive(Debug, Clone, Default)]
pub struct RehearseOptions {
    /// The branch's name (default `rehearse-<unix ms>`).
    pub name: Option<String>,
    /// Keep at most this many rows on the branch (evenly spread); none: all rows.
    pub sample: Option<u64>,
    /// Keep the branch afterwards (default: delete it).
    pub keep: bool,
    /// The reason that lets a gate asking for review go ahead (as `apply --approve`).
    pub approve: Option<String>,
    /// Apply up to this migration id.
    pub to: Option<u32>,
}

/// How a rehearsal ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RehearsalOutcome {
    /// Every pending migration applied on the branch, gates and invariants passed.
    Pass,
    /// A gate asks for a human's review (`--approve` would let it go ahead).
    Review,
    /// A gate, an invariant or lint blocks it.
    Blocked,
    /// It failed for another reason (an embedder, the input); see `error`.
    Failed,
}

/// What a rehearsal found.
#[derive(Debug, Clone, Serialize)]
pub struct Rehearsal {
    /// The store rehearsed on.
    pub store: String,
    /// Its version (unchanged by the rehearsal).
    pub store_version: u64,
    /// The branch (deleted afterwards unless kept).
    pub branch: String,
    /// Whether the branch was kept.
    pub kept: bool,
    /// Live rows in the store.
    pub rows: u64,
    /// Rows on the branch the migrations ran on (fewer when sampled).
    pub rows_rehearsed: u64,
    /// How it ended.
    pub outcome: RehearsalOutcome,
    /// The error, when it did not pass.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The apply report on the branch (none when the apply failed before reporting).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub report: Option<ApplyReport>,
    /// Wall time of the apply on the branch.
    pub duration_ms: u64,
    /// The duration scaled to the whole store (sampled rehearsals).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub estimated_full_ms: Option<u64>,
    /// What the embedders were asked on the branch (those that count their calls).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub embedder: Option<EmbedderCalls>,
    /// The same scaled to the whole store (sampled rehearsals).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub estimated_full_embedder: Option<EmbedderCalls>,
}

/// Rehearse `folder` on a branch of `store` with `embedders`.
pub async fn rehearse(
    store: &Store,
    folder: MigrationFolder,
    embedders: &HashMap<String, Arc<dyn Embedder>>,
    opts: RehearseOptions,
) -> Result<Rehearsal> {
    let name = opts
        .name
        .clone()
        .unwrap_or_else(|| format!("rehearse-{}", chrono::Utc::now().timestamp_millis()));
    let rows = store.count().await?;
    let mut branch = store.branch(&name, None).await?;
    let result = run_on_branch(&mut branch, folder, embedders, &opts, rows).await;
    let uri = branch.uri().to_owned();
    drop(branch);
    if !opts.keep {
        store.delete_branch(&name).await?;
    }
    let (rows_rehearsed, outcome) = result?;
    Ok(rehearsal(
        store,
        uri,
        opts.keep,
        rows,
        rows_rehearsed,
        outcome,
    ))
}

/// What the apply on the branch gave: a report, or the error it stopped on.
type Applied = (std::result::Result<ApplyReport, StoreError>, u64);

async fn run_on_branch(
    branch: &mut Store,
    folder: MigrationFolder,
    embedders: &HashMap<String, Arc<dyn Embedder>>,
    opts: &RehearseOptions,
    rows: u64,
) -> Result<(u64, Applied)> {
    let rows_rehearsed = match opts.sample {
        Some(n) if n < rows => {
            cut_to_sample(branch, n, rows).await?;
            n
        }
        _ => rows,
    };
    let started = std::time::Instant::now();
    let mut m = branch
        .migrator_for(folder)
        .approve(opts.approve.clone())
        .to(opts.to)
        .holder("memlane rehearse");
    for (k, e) in embedders {
        m = m.embedder(k.clone(), e.clone());
    }
    let applied = m.apply().await;
    #[allow(clippy::cast_possible_truncation)]
    let ms = started.elapsed().as_millis() as u64;
    Ok((rows_rehearsed, (applied, ms)))
}

/// Delete all but `keep` evenly spread live rows on the branch (one commit there).
async fn cut_to_sample(branch: &mut Store, keep: u64, rows: u64) -> Result<()> {
    let ds = branch.dataset().clone();
    let mut s = ds.scan();
    s.project::<&str>(&[])?;
    s.with_row_address();
    let batches: Vec<arrow::array::RecordBatch> = s.try_into_stream().await?.try_collect().await?;
    let mut drop = Vec::new();
    let mut i = 0u64;
    for b in &batches {
        let addr = b
            .column_by_name("_rowaddr")
            .ok_or_else(|| StoreError::Internal("no _rowaddr".into()))?
            .as_primitive::<arrow::datatypes::UInt64Type>();
        for a in addr.values() {
            // row i is kept when it starts a new 1/keep-th of the rows
            if i * keep / rows == (i + 1) * keep / rows {
                drop.push(*a);
            }
            i += 1;
        }
    }
    let op = crate::engine::scan::delete_rows(
        &ds,
        drop,
        format!("memlane rehearsal sample: keep {keep} of {rows} rows"),
    )
    .await?;
    let mut entry = HistoryEntry::new(Action::Sample, now());
    entry.reason = Some(format!(
        "rehearsal sample: {keep} of {rows} rows kept, evenly spread"
    ));
    entry.rows = Some((rows, keep));
    branch.commit(op, None, &entry, Options::default()).await?;
    Ok(())
}

fn rehearsal(
    store: &Store,
    branch: String,
    kept: bool,
    rows: u64,
    rows_rehearsed: u64,
    (applied, duration_ms): Applied,
) -> Rehearsal {
    let scale = |x: u64| -> u64 {
        if rows_rehearsed == 0 || rows_rehearsed >= rows {
            return x;
        }
        #[allow(
            clippy::cast_possible_truncation,
            clippy::cast_precision_loss,
            clippy::cast_sign_loss
        )]
        let y = (x as f64 * rows as f64 / rows_rehearsed as f64).round() as u64;
        y
    };
    let sampled = rows_rehearsed < rows;
    let (outcome, error, report) = match applied {
        Ok(r) => {
            let blocked = r
                .migrations
                .iter()
                .any(|m| m.outcome == memlane_core::MigrationOutcome::Blocked);
            let o = if blocked {
                RehearsalOutcome::Blocked
            } else {
                RehearsalOutcome::Pass
            };
            (o, None, Some(r))
        }
        Err(e) => {
            let o = match e.kind() {
                ErrorKind::Review => RehearsalOutcome::Review,
                k if k.exit_code() == 3 => RehearsalOutcome::Blocked,
                _ => RehearsalOutcome::Failed,
            };
            (o, Some(e.to_string()), None)
        }
    };
    let embedder = report.as_ref().and_then(embedder_calls);
    Rehearsal {
        store: store.uri().to_owned(),
        store_version: store.version(),
        branch,
        kept,
        rows,
        rows_rehearsed,
        outcome,
        error,
        report,
        duration_ms,
        estimated_full_ms: sampled.then(|| scale(duration_ms)),
        embedder,
        estimated_full_embedder: embedder.filter(|_| sampled).map(|c| EmbedderCalls {
            requests: scale(c.requests),
            retries: scale(c.retries),
            restarts: c.restarts,
            texts: scale(c.texts),
            tokens: c.tokens.map(scale),
        }),
    }
}

/// The embedder calls of every step of an apply, added up.
fn embedder_calls(r: &ApplyReport) -> Option<EmbedderCalls> {
    let calls: Vec<EmbedderCalls> = r
        .migrations
        .iter()
        .flat_map(|m| &m.steps)
        .filter_map(|s| s.backfill.as_ref().and_then(|b| b.embedder))
        .collect();
    (!calls.is_empty()).then(|| {
        calls
            .iter()
            .fold(EmbedderCalls::default(), |a, c| a.plus(c))
    })
}

impl fmt::Display for Rehearsal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let verdict = match self.outcome {
            RehearsalOutcome::Pass => "PASS",
            RehearsalOutcome::Review => "REVIEW",
            RehearsalOutcome::Blocked => "BLOCKED",
            RehearsalOutcome::Failed => "FAILED",
        };
        writeln!(
            f,
            "rehearsal of {} (version {}, unchanged) on branch {}{}: {verdict}",
            self.store,
            self.store_version,
            self.branch,
            if self.kept { " (kept)" } else { " (deleted)" }
        )?;
        if self.rows_rehearsed < self.rows {
            writeln!(
                f,
                "  sample: {} of {} rows, evenly spread",
                self.rows_rehearsed, self.rows
            )?;
        }
        #[allow(clippy::cast_precision_loss)]
        let secs = |ms: u64| ms as f64 / 1000.0;
        write!(
            f,
            "  duration on the branch: {:.1} s",
            secs(self.duration_ms)
        )?;
        if let Some(ms) = self.estimated_full_ms {
            write!(f, "; estimated for the whole store: {:.1} s", secs(ms))?;
        }
        writeln!(f)?;
        if let Some(c) = &self.embedder {
            writeln!(f, "  {c}")?;
        }
        if let Some(c) = &self.estimated_full_embedder {
            writeln!(f, "  estimated for the whole store: {c}")?;
        }
        if let Some(r) = &self.report {
            for l in r.to_string().lines() {
                writeln!(f, "  {l}")?;
            }
        }
        if let Some(e) = &self.error {
            writeln!(f, "  error: {e}")?;
        }
        Ok(())
    }
}
