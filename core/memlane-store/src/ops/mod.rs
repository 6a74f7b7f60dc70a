//! Step executors: each turns one migration step into one uncommitted Lance
//! operation (data files written, nothing committed) plus the state after it.

use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::{ArrayRef, RecordBatch};
use lance::Dataset;
use lance::dataset::transaction::Operation;
use memlane_core::{Step, StoreState};

use crate::error::Result;

mod add_field;
mod add_space;
mod backfill;
mod cast_field;
pub(crate) mod create_index;
mod dedupe;
mod delete_where;
mod drop_field;
mod exec;
mod normalize;
mod reembed;
mod rename_field;
mod set_active_space;
mod truncate;

use crate::vectors::{flat_values, lance_err, vectors};

/// Progress of a running step.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Progress {
    /// Migration id.
    pub migration: u32,
    /// 0-based step.
    pub step: usize,
    /// Steps in the migration.
    pub steps: usize,
    /// Op name.
    pub op: String,
    /// Rows processed so far.
    pub done: u64,
    /// Rows to process.
    pub total: u64,
    /// A re-embed: rows embedded per second since the apply started (0: not known yet).
    pub rows_per_sec: f64,
    /// A re-embed: seconds left at that rate (none until a rate is known).
    pub eta_secs: Option<f64>,
    /// Where the step is: `start`, a re-embed's `expand` / `backfill` / `catch_up`,
    /// `committed` or `blocked` (empty: running).
    pub phase: String,
    /// The step's report, on its `committed` or `blocked` event.
    pub report: Option<Box<memlane_core::StepReport>>,
    /// A re-embed: backfill commits, commits preempted by writers, fragment tasks
    /// retried, and the workers' shares when workers embed.
    pub backfill: Option<memlane_core::BackfillStats>,
}

/// Progress callback.
pub type ProgressFn = Arc<dyn Fn(&Progress) + Send + Sync>;

/// A step ready to commit.
pub(crate) struct Staged {
    pub(crate) op: Operation,
    pub(crate) state: StoreState,
    pub(crate) rows_written: u64,
    pub(crate) rows_deleted: u64,
    /// Vector columns whose values this step wrote.
    pub(crate) written_vectors: Vec<String>,
    /// Vector columns a dry run only sampled (not checked as a whole).
    pub(crate) sampled: Vec<String>,
    /// For an online re-embed: the version its last backfill pass read; the written
    /// space is checked on the rows as of that version.
    pub(crate) settled: Option<u64>,
    /// Vector columns checked as they were produced (physical rows, deleted included).
    pub(crate) checked_as_written: Vec<(String, Tally)>,
}

/// Outcome of checking vectors as they are produced.
#[derive(Debug, Clone, Default)]
pub(crate) struct Tally {
    pub(crate) valid: u64,
    pub(crate) invalid: u64,
    pub(crate) nulls: u64,
}

impl Tally {
    fn add(&mut self, o: &Tally) {
        self.valid += o.valid;
        self.invalid += o.invalid;
        self.nulls += o.nulls;
    }
}

/// Inputs of an executor.
pub(crate) struct Ctx<'a> {
    pub(crate) ds: &'a Arc<Dataset>,
    pub(crate) state: &'a StoreState,
    pub(crate) progress: Option<(ProgressFn, Progress)>,
}

type Mapper = Arc<dyn Fn(&RecordBatch) -> lance::Result<RecordBatch> + Send + Sync>;

/// Computes a column's new values from the read columns and the deletion mask.
type ColumnMapper = Arc<dyn Fn(&RecordBatch, &[bool]) -> lance::Result<ArrayRef> + Send + Sync>;

/// Run one step on `ctx.ds`, returning the uncommitted operation and the new state.
pub(crate) async fn stage(ctx: &Ctx<'_>, step: &Step) -> Result<Staged> {
    let state = step.evolve_state(ctx.state);
    let total = ctx.ds.count_rows(None).await? as u64;
    ctx.tick(0);
    let mut staged = Staged {
        op: Operation::Append { fragments: vec![] },
        state,
        rows_written: 0,
        rows_deleted: 0,
        written_vectors: vec![],
        sampled: vec![],
        settled: None,
        checked_as_written: vec![],
    };
    match step {
        Step::AddField {
            field,
            ty,
            default,
            nullable,
        } => add_field::stage(ctx, &mut staged, field, ty, default.as_ref(), *nullable).await?,
        Step::RenameField { from, to } => rename_field::stage(ctx, &mut staged, from, to).await?,
        Step::DropField { field } => drop_field::stage(ctx, &mut staged, field).await?,
        Step::CastField { field, to } => cast_field::stage(ctx, &mut staged, field, to).await?,
        Step::Backfill {
            field,
            value,
            copy_from,
            only_null,
        } => {
            backfill::stage(
                ctx,
                &mut staged,
                field,
                value.as_ref(),
                copy_from.as_deref(),
                *only_null,
            )
            .await?
        }
        Step::AddSpace { .. } => add_space::stage(ctx, &mut staged).await?,
        Step::Reembed { space, .. } => reembed::stage(ctx, &mut staged, space).await?,
        Step::Truncate { from, .. } => truncate::stage(ctx, &mut staged, from).await?,
        Step::Normalize { space } => normalize::stage(ctx, &mut staged, space).await?,
        Step::DeleteWhere { predicate } => delete_where::stage(ctx, &mut staged, predicate).await?,
        Step::Dedupe { by, order_by } => dedupe::stage(ctx, &mut staged, by, order_by).await?,
        Step::SetActiveSpace { .. } => set_active_space::stage(&mut staged),
        Step::CreateIndex { space, index } => {
            create_index::stage(ctx, &mut staged, space, index).await?
        }
        Step::OptimizeIndex { space } => create_index::reindex(ctx, &mut staged, space).await?,
    }
    ctx.tick(total);
    Ok(staged)
}

/// A commit that changes no data (state only): mirrors the active space in the schema metadata.
pub(crate) fn state_only_op(state: &StoreState) -> Operation {
    Operation::UpdateConfig {
        config_updates: None,
        table_metadata_updates: None,
        schema_metadata_updates: Some(lance::dataset::transaction::UpdateMap {
            update_entries: vec![
                (
                    "memlane.active_space",
                    state.active_space.as_deref().unwrap_or(""),
                )
                    .into(),
            ],
            replace: false,
        }),
        field_metadata_updates: HashMap::new(),
    }
}
