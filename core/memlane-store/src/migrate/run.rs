//! One apply, as a run object whose phases are methods: prepare (lock held by the
//! caller: refresh, tags, due contracts, plan, embedders), then per step calibrate and
//! backfill a re-embed, stage, check, commit with retry, catch up, tag; then the
//! catch-up of the active space and the context-loss report.

use std::collections::BTreeMap;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use lance::Dataset;
use memlane_core::plan::PlannedMigration;
use memlane_core::seal::FileDigest;
use memlane_core::state::InFlight;
use memlane_core::{
    Action, AppliedMigration, ApplyReport, HistoryEntry, InvariantResult, InvariantSpec, Migration,
    MigrationOutcome, MigrationReport, StepReport, StoreState,
};
use tracing::Instrument;

use crate::embed::Embedder;
use crate::engine::commit::{self as engine, Conflict, Options, Record, conflict};
use crate::engine::files;
use crate::error::{Result, StoreError};
use crate::gradual::Settled;
use crate::ops::{Ctx, Progress, ProgressFn, Staged, Tally, stage};
use crate::store::{Store, now};

use super::reembed::{backfill, calibrate};
use super::tags::{ensure_tags, tag_migration};

/// Commits of one step preempted by writers before the apply gives up.
const STEP_RETRIES: u32 = 50;

/// What an apply was asked to do (the builder's settings).
pub(super) struct Settings {
    pub(super) embedders: HashMap<String, Arc<dyn Embedder>>,
    pub(super) dry_run: bool,
    pub(super) to: Option<u32>,
    pub(super) progress: Option<ProgressFn>,
    pub(super) approve: Option<String>,
    pub(super) invariants: Vec<InvariantSpec>,
    /// Fragment executors, by embedder name (the distributed backfill).
    pub(super) executors: HashMap<String, Arc<dyn crate::gradual::FragmentExecutor>>,
}

/// An apply in progress.
pub(super) struct Run<'a> {
    store: &'a mut Store,
    settings: Settings,
    /// The version steps build on: the store's head, or the last staged version in a
    /// dry run.
    base: Arc<Dataset>,
    /// The state `base` carries (or would, in a dry run).
    state: StoreState,
    /// No op adds rows or changes `id` (lint refuses edits of it) and removing rows keeps
    /// ids unique: uniqueness is scanned once per apply and carried forward.
    ids_checked: Option<(u64, InvariantResult)>,
    /// Per space: where a backfill in this apply left it (later ones read the delta).
    settled_at: HashMap<String, Settled>,
    report: ApplyReport,
    started: Instant,
}

/// What the re-embed of a step did before it is staged.
#[derive(Default)]
struct Reembedded {
    /// Rows embedded (a dry run: would be).
    rows: Option<u64>,
    /// Where the backfill left the space.
    settled: Option<Settled>,
    /// How the backfill ran (commits, conflicts, workers).
    stats: Option<memlane_core::BackfillStats>,
}

/// A step staged on a detached commit, checked, and ready to commit.
struct Attempt {
    staged: Staged,
    state: StoreState,
    entry: HistoryEntry,
    digests: BTreeMap<String, FileDigest>,
    /// The attempt committed detached on `base`: what the checks read.
    detached: Arc<Dataset>,
    report: StepReport,
}

impl<'a> Run<'a> {
    /// A run over `store` (the migration lock, when needed, is already held).
    pub(super) fn new(store: &'a mut Store, settings: Settings) -> Self {
        let report = ApplyReport {
            version_before: store.version(),
            version_after: store.version(),
            dry_run: settings.dry_run,
            ..Default::default()
        };
        Run {
            base: store.dataset().clone(),
            state: store.state().clone(),
            store,
            settings,
            ids_checked: None,
            settled_at: HashMap::new(),
            report,
            started: Instant::now(),
        }
    }

    /// Apply every pending migration of `migrations` (up to `to`).
    pub(super) async fn execute(mut self, migrations: &[Migration]) -> Result<ApplyReport> {
        let pending = self.prepare(migrations).await?;
        for (m, pm) in &pending {
            // boxed: each step's future is deep (staging, checks, re-embeds)
            Box::pin(self.migration(m, pm)).await?;
        }
        if !self.settings.dry_run && self.store.state().in_flight.is_none() {
            self.catch_up_active(migrations).await?;
        }
        self.report.version_after = self.base.version_id();
        self.context_report().await?;
        self.report.duration_ms = elapsed_ms(self.started);
        Ok(self.report)
    }

    /// Refresh, check the record, repair tags, drop due contracts, plan, and check that
    /// every pending re-embed has its embedder. Returns the pending migrations with
    /// their plans.
    async fn prepare<'m>(
        &mut self,
        migrations: &'m [Migration],
    ) -> Result<Vec<(&'m Migration, PlannedMigration)>> {
        self.store.refresh().await?;
        self.store.ensure_intact()?;
        if !self.settings.dry_run {
            ensure_tags(self.store).await?;
            // replaced spaces whose retention has passed are dropped first
            self.store.contract_due_locked().await?;
        }
        self.started = Instant::now();
        let plan = self.store.plan(migrations).await?;
        plan.ensure_clean()?;
        let to = self.settings.to;
        let mut pending = Vec::new();
        for pm in plan
            .migrations
            .into_iter()
            .filter(|m| to.is_none_or(|t| m.id <= t))
        {
            let m = migrations.iter().find(|x| x.id == pm.id).ok_or_else(|| {
                StoreError::Internal(format!("migration {} is planned but not given", pm.id))
            })?;
            self.ensure_embedders(m, &pm)?;
            pending.push((m, pm));
        }
        self.report.version_before = self.store.version();
        self.base = self.store.dataset().clone();
        self.state = self.store.state().clone();
        Ok(pending)
    }

    /// Every re-embed of `m` still to run has its embedder.
    fn ensure_embedders(&self, m: &Migration, pm: &PlannedMigration) -> Result<()> {
        for (s, planned) in m.steps.iter().zip(&pm.steps) {
            if let memlane_core::Step::Reembed { embedder, .. } = &s.step
                && !planned.done
            {
                self.embedder(m, embedder.as_str())?;
            }
        }
        Ok(())
    }

    /// The embedder named `name`, or the error naming it and the file.
    fn embedder(&self, m: &Migration, name: &str) -> Result<Arc<dyn Embedder>> {
        self.settings
            .embedders
            .get(name)
            .cloned()
            .ok_or_else(|| StoreError::MissingEmbedder {
                file: m.file.clone(),
                name: name.to_owned(),
            })
    }

    /// Apply the steps of one migration that are not done yet.
    async fn migration(&mut self, m: &Migration, pm: &PlannedMigration) -> Result<()> {
        let first = pm
            .steps
            .iter()
            .position(|s| !s.done)
            .unwrap_or(m.steps.len());
        let mut mreport = MigrationReport {
            id: m.id,
            file: m.file.clone(),
            description: m.description.clone(),
            checksum: pm.checksum.clone(),
            outcome: if self.settings.dry_run {
                MigrationOutcome::DryRun
            } else {
                MigrationOutcome::Applied
            },
            resumed: pm.resumes,
            steps: vec![],
        };
        if self.state.in_flight.is_none() {
            self.state.in_flight = Some(in_flight(m, pm, self.base.version_id()));
        }
        for i in first..m.steps.len() {
            self.event(m, i, "start", None);
            let span = tracing::info_span!(
                "step",
                migration = m.id,
                step = i + 1,
                op = m.steps[i].step.op(),
                rows_written = tracing::field::Empty,
                error = tracing::field::Empty,
            );
            let result = Box::pin(self.step(m, pm, i)).instrument(span.clone()).await;
            match &result {
                Ok(r) => span.record("rows_written", r.rows_written),
                Err(e) => span.record("error", tracing::field::display(e)),
            };
            drop(span);
            match result {
                Ok(sreport) => {
                    self.event(m, i, "committed", Some(&sreport));
                    mreport.steps.push(sreport);
                }
                Err(e) => {
                    if let StoreError::InvariantViolation { report, .. } = &e {
                        self.event(m, i, "blocked", Some(report));
                        mreport.outcome = MigrationOutcome::Blocked;
                        mreport.steps.push((**report).clone());
                        self.report.migrations.push(mreport);
                        self.report.duration_ms = elapsed_ms(self.started);
                    }
                    return Err(e);
                }
            }
        }
        self.report.migrations.push(mreport);
        Ok(())
    }

    /// Tell the progress callback where a step is (`start`, `committed`, `blocked`),
    /// with its report when it ended.
    fn event(&self, m: &Migration, i: usize, phase: &str, report: Option<&StepReport>) {
        if let Some(f) = &self.settings.progress {
            f(&Progress {
                migration: m.id,
                step: i,
                steps: m.steps.len(),
                op: m.steps[i].step.op().into(),
                phase: phase.to_owned(),
                // an ended step: all of its rows
                done: report.map_or(0, |r| r.rows_after),
                total: report.map_or(0, |r| r.rows_after),
                report: report.map(|r| Box::new(r.clone())),
                ..Progress::default()
            });
        }
    }

    /// One step: re-embed first if it is one, stage, check, and commit (a commit
    /// preempted by a concurrent writer is staged again on the new head); then tag and
    /// catch up. A blocked step is an [`StoreError::InvariantViolation`].
    async fn step(&mut self, m: &Migration, pm: &PlannedMigration, i: usize) -> Result<StepReport> {
        let t0 = Instant::now();
        let mut reembedded = Reembedded::default();
        let mut prev_invariants: Option<Vec<InvariantResult>> = None;
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            self.reembed(m, pm, i, &mut reembedded).await?;
            let mut a = self
                .stage_and_check(m, pm, i, &reembedded, prev_invariants.take())
                .instrument(tracing::info_span!("stage_and_check", attempt))
                .await?;
            if a.report.blocked() {
                a.report.duration_ms = elapsed_ms(t0);
                return Err(blocked(m, i, a.report));
            }
            if self.settings.dry_run {
                a.report.duration_ms = elapsed_ms(t0);
                // the next step builds on what this one would have committed
                self.base = a.detached;
                self.state = a.state;
                return Ok(a.report);
            }
            self.record_step(m, pm, i, &mut a, t0);
            match self
                .commit(&a)
                .instrument(tracing::info_span!("commit", attempt))
                .await
            {
                Ok(committed) => return self.committed(m, pm, i, committed, a).await,
                Err(e) if attempt < STEP_RETRIES && conflict(&e) == Some(Conflict::Retryable) => {
                    prev_invariants = Some(a.report.invariants);
                    self.store.refresh_data().await?;
                    self.base = self.store.dataset().clone();
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// For a re-embed: calibrate the target space (once), then backfill it in
    /// checkpoint commits (or, in a dry run, try the embedder on a sample).
    async fn reembed(
        &mut self,
        m: &Migration,
        pm: &PlannedMigration,
        i: usize,
        out: &mut Reembedded,
    ) -> Result<()> {
        let step = &m.steps[i].step;
        let memlane_core::Step::Reembed {
            space,
            embedder,
            source,
            ..
        } = step
        else {
            return Ok(());
        };
        let sp = self
            .state
            .space(space)
            .cloned()
            .ok_or_else(|| StoreError::unknown_space(space, &self.state))?;
        let e = self.embedder(m, embedder)?;
        let approve = self.settings.approve.clone();
        let dry_run = self.settings.dry_run;
        // the step's embedder requests count from here: the comparison sample's too
        let calls_from = e.calls();
        let (sp, from_sample) = calibrate(
            self.store,
            &mut self.state,
            m,
            step,
            sp,
            &e,
            approve.as_deref(),
            dry_run,
            (i, self.settings.progress.clone()),
        )
        .instrument(tracing::info_span!("calibrate", space = %space))
        .await?;
        if dry_run {
            let n = crate::gradual::sample(&self.base, &sp, embedder, e.as_ref(), source).await?;
            out.rows = Some(n);
            return Ok(());
        }
        let (st, n) = backfill(
            self.store,
            self.state.clone(),
            m,
            &pm.checksum,
            i,
            step,
            sp,
            e,
            self.settings.progress.clone(),
            self.settled_at.get(space).copied(),
            self.settings.executors.get(embedder).cloned(),
            (calls_from, from_sample),
        )
        .instrument(tracing::info_span!("backfill", space = %space))
        .await?;
        self.state = st;
        self.base = self.store.dataset().clone();
        self.index_reembedded(m, i, step).await?;
        out.rows = Some(out.rows.unwrap_or(0) + n.embedded);
        out.settled = Some(n.settled);
        out.stats = Some(n.stats);
        self.settled_at.insert(space.clone(), n.settled);
        Ok(())
    }

    /// Before a re-embed's step switches the active space: build the index the step
    /// gives the new space (declared, or the replaced space's carried over) in its own
    /// sealed commit, and prove its recall there; below `min_recall` the step is
    /// blocked and the old space stays active.
    async fn index_reembedded(
        &mut self,
        m: &Migration,
        i: usize,
        step: &memlane_core::Step,
    ) -> Result<()> {
        let Some((space, spec)) = step.index_after(&self.state) else {
            return Ok(());
        };
        let Some(mut sp) = self.state.space(&space).cloned() else {
            return Ok(());
        };
        sp.index = Some(spec.clone());
        let op = crate::ops::create_index::build(&self.base, &sp, &spec).await?;
        let mut state = self.state.clone();
        if let Some(s) = state.spaces.iter_mut().find(|s| s.name == space) {
            s.index = Some(spec.clone());
        }
        let mut entry = memlane_core::HistoryEntry::new(memlane_core::Action::Checkpoint, now());
        entry.migration = Some(m.id);
        entry.file = Some(m.file.clone());
        entry.reason = Some(format!(
            "{} index built on `{space}` before it becomes active",
            spec.kind
        ));
        entry.active_space.clone_from(&state.active_space);
        self.store
            .commit(op, Some(state.clone()), &entry, Options::default())
            .await?;
        self.state = state;
        self.base = self.store.dataset().clone();
        let check = memlane_core::InvariantSpec::index_recall(&space, spec.min_recall());
        let r = crate::checks::index::recall(&check, &self.base, &sp).await?;
        if r.blocks() {
            let rows = self.base.count_rows(None).await? as u64;
            return Err(StoreError::InvariantViolation {
                file: m.file.clone(),
                step: i + 1,
                op: step.op().into(),
                details: r.message.clone(),
                report: Box::new(StepReport {
                    migration: m.id,
                    step: i,
                    op: step.op().into(),
                    description: step.describe(),
                    rows_before: rows,
                    rows_after: rows,
                    rows_deleted: 0,
                    rows_written: 0,
                    duration_ms: 0,
                    invariants: vec![r],
                    version: Some(self.base.version_id()),
                    compat: None,
                    backfill: None,
                }),
            });
        }
        Ok(())
    }

    /// Stage the step on `base`, commit it detached, and check the invariants on
    /// exactly what would land (a metadata-only step preempted by a writer's append
    /// reuses `prev`: its checks already passed and the appended rows were validated by
    /// their writer).
    async fn stage_and_check(
        &mut self,
        m: &Migration,
        pm: &PlannedMigration,
        i: usize,
        reembedded: &Reembedded,
        prev: Option<Vec<InvariantResult>>,
    ) -> Result<Attempt> {
        let s = &m.steps[i];
        let rows_before = self.base.count_rows(None).await? as u64;
        let staged = self.stage(m, i, rows_before, reembedded).await?;
        let state = self.next_state(m, i, &staged);
        let entry = step_entry(m, pm, i, &state);
        let digests = files::added_digests(&self.base, &staged.op).await?;
        let detached = Arc::new(
            engine::commit_with_files(
                &self.base,
                staged.op.clone(),
                Record {
                    state: Some(&state),
                    entry: &entry,
                },
                digests.clone(),
                Options {
                    detached: true,
                    affected_rows: None,
                },
            )
            .await?,
        );
        let metadata_only = pm.steps[i].effect == memlane_core::Effect::Metadata
            && !matches!(s.step, memlane_core::Step::Reembed { .. });
        let mut invariants = match prev.filter(|_| metadata_only) {
            Some(prev) => prev,
            None => {
                self.check(m, i, &detached, &staged, &state, rows_before)
                    .await?
            }
        };
        // a step that builds an index proves its recall on the version it would commit
        if let Some(sp) = s.step.builds_index().and_then(|n| state.space(n))
            && let Some(index) = &sp.index
        {
            let spec = memlane_core::InvariantSpec::index_recall(&sp.name, index.min_recall());
            invariants.push(crate::checks::index::recall(&spec, &detached, sp).await?);
        }
        let report = StepReport {
            migration: m.id,
            step: i,
            op: s.step.op().into(),
            description: s.step.describe(),
            rows_before,
            rows_after: detached.count_rows(None).await? as u64,
            rows_deleted: staged.rows_deleted,
            rows_written: staged.rows_written,
            duration_ms: 0,
            invariants,
            version: None,
            compat: matches!(s.step, memlane_core::Step::Reembed { .. })
                .then(|| self.state.in_flight.as_ref().and_then(|f| f.compat.clone()))
                .flatten(),
            backfill: reembedded.stats.clone(),
        };
        Ok(Attempt {
            staged,
            state,
            entry,
            digests,
            detached,
            report,
        })
    }

    /// The op of step `i` staged on `base`, with what its re-embed proved.
    async fn stage(
        &self,
        m: &Migration,
        i: usize,
        rows_before: u64,
        reembedded: &Reembedded,
    ) -> Result<Staged> {
        let s = &m.steps[i];
        let ctx = Ctx {
            ds: &self.base,
            state: &self.state,
            progress: self.settings.progress.clone().map(|f| {
                (
                    f,
                    Progress {
                        migration: m.id,
                        step: i,
                        steps: m.steps.len(),
                        op: s.step.op().into(),
                        done: 0,
                        total: rows_before,
                        ..Progress::default()
                    },
                )
            }),
        };
        let mut staged = stage(&ctx, &s.step).await?;
        staged.settled = reembedded.settled.map(|st| st.version);
        if let (Some(st), memlane_core::Step::Reembed { space, .. }) = (reembedded.settled, &s.step)
            && let Some(sp) = self.state.space(space)
        {
            // every row as of the settled version has a vector the embedder output
            // checks (or its writer) validated: no need to read back
            staged.checked_as_written.push((
                sp.column.clone(),
                Tally {
                    valid: 0,
                    invalid: 0,
                    nulls: st.without_text,
                },
            ));
        }
        if let Some(n) = reembedded.rows {
            staged.rows_written = n;
            if self.settings.dry_run {
                staged.sampled = std::mem::take(&mut staged.written_vectors);
            }
        }
        Ok(staged)
    }

    /// The state step `i` leaves: the staged one, and for a re-embed with a retention
    /// the scheduled drop of the space it replaced.
    fn next_state(&self, m: &Migration, i: usize, staged: &Staged) -> StoreState {
        let mut next = staged.state.clone();
        let memlane_core::Step::Reembed {
            space,
            contract_after: Some(keep),
            compare_to,
            ..
        } = &m.steps[i].step
        else {
            return next;
        };
        let old = compare_to
            .clone()
            .or_else(|| self.state.active_space.clone())
            .filter(|o| o != space && next.space(o).is_some());
        if let (Some(old), Ok(secs)) = (old, memlane_core::migration::parse_duration(keep)) {
            next.pending_contracts.retain(|p| p.space != old);
            next.pending_contracts.push(memlane_core::PendingContract {
                due: due_after(secs),
                space: old,
                retention: keep.clone(),
                migration: m.id,
            });
        }
        next
    }

    /// The built-in, migration and store invariants on the detached version.
    async fn check(
        &mut self,
        m: &Migration,
        i: usize,
        detached: &Arc<Dataset>,
        staged: &Staged,
        next: &StoreState,
        rows_before: u64,
    ) -> Result<Vec<InvariantResult>> {
        let declared = [m.invariants.as_slice(), self.settings.invariants.as_slice()].concat();
        let t = Instant::now();
        let out = crate::checks::step::StepCheck {
            staged: detached,
            base: &self.base,
            touches_content: m.steps[i].step.touches_field(memlane_core::schema::CONTENT),
            before: &self.state,
            after: next,
            st: staged,
            rows_before,
            declared: &declared,
        }
        .run(&mut self.ids_checked)
        .await?;
        tracing::debug!(
            step = i,
            migration = m.id,
            secs = t.elapsed().as_secs_f64(),
            "checked step"
        );
        Ok(out)
    }

    /// Record the step in the state and entry it commits: progress of the in-flight
    /// migration (or the applied one, when it is the last step), the report, the
    /// approval of a review.
    fn record_step(
        &self,
        m: &Migration,
        pm: &PlannedMigration,
        i: usize,
        a: &mut Attempt,
        t0: Instant,
    ) {
        let mut flight = self
            .state
            .in_flight
            .clone()
            .unwrap_or_else(|| in_flight(m, pm, self.base.version_id()));
        flight.checkpoint = None;
        flight.compat = None;
        flight.steps_done = i + 1;
        a.report.duration_ms = elapsed_ms(t0);
        flight.reports.push(a.report.clone());
        if i + 1 == m.steps.len() {
            a.state.in_flight = None;
            a.state.applied.push(AppliedMigration {
                id: m.id,
                file: m.file.clone(),
                description: m.description.clone(),
                content_hash: m.content_hash.clone(),
                checksum: pm.checksum.clone(),
                applied_at: now(),
                repairs: vec![],
            });
        } else {
            a.state.in_flight = Some(flight);
        }
        if let Some(ap) = a.report.compat.as_ref().and_then(|c| c.approval.as_ref()) {
            a.entry.reason = Some(format!(
                "review approved by {} at {}: {}",
                ap.by, ap.at, ap.reason
            ));
        }
        a.entry.report = Some(a.report.clone());
    }

    /// Commit the attempt on `base`.
    async fn commit(&self, a: &Attempt) -> Result<Dataset> {
        engine::commit_with_files(
            &self.base,
            a.staged.op.clone(),
            Record {
                state: Some(&a.state),
                entry: &a.entry,
            },
            a.digests.clone(),
            Options::default(),
        )
        .await
    }

    /// After a step committed: the store's new head, the tag of a completed migration,
    /// and the catch-up of rows a writer added while a re-embed completed.
    async fn committed(
        &mut self,
        m: &Migration,
        pm: &PlannedMigration,
        i: usize,
        committed: Dataset,
        a: Attempt,
    ) -> Result<StepReport> {
        let mut report = a.report;
        report.version = Some(committed.version_id());
        self.base = Arc::new(committed);
        self.store
            .set_head(self.base.clone(), Some(a.state.clone()));
        self.state = a.state;
        if i + 1 == m.steps.len() {
            // the tag marks the commit that completed the migration (not where a
            // catch-up after it ended); after a restore and a re-apply it moves
            tag_migration(self.store, m, self.base.version_id()).await?;
        }
        let memlane_core::Step::Reembed {
            space, embedder, ..
        } = &m.steps[i].step
        else {
            return Ok(report);
        };
        let (Some(sp), Some(e)) = (
            self.state.space(space).cloned(),
            self.settings.embedders.get(embedder).cloned(),
        ) else {
            return Ok(report);
        };
        let (st, n) = backfill(
            self.store,
            self.state.clone(),
            m,
            &pm.checksum,
            i,
            &m.steps[i].step,
            sp,
            e,
            self.settings.progress.clone(),
            self.settled_at.get(space).copied(),
            None,
            (None, crate::gradual::SampleVectors::new()),
        )
        .await?;
        self.settled_at.insert(space.clone(), n.settled);
        self.state = st;
        self.base = self.store.dataset().clone();
        report.rows_written += n.embedded;
        Ok(report)
    }

    /// Writes that raced a completed re-embed of the active space: caught up whenever
    /// its embedder is at hand (cheap when there is nothing to do).
    async fn catch_up_active(&mut self, migrations: &[Migration]) -> Result<()> {
        let active = self.store.state().active_space.clone();
        let applied: Vec<u32> = self.store.state().applied.iter().map(|a| a.id).collect();
        for m in migrations.iter().filter(|m| applied.contains(&m.id)) {
            for (i, s) in m.steps.iter().enumerate() {
                let memlane_core::Step::Reembed {
                    space, embedder, ..
                } = &s.step
                else {
                    continue;
                };
                let (true, Some(sp), Some(e)) = (
                    active.as_deref() == Some(space.as_str()),
                    self.store.state().space(space).cloned(),
                    self.settings.embedders.get(embedder).cloned(),
                ) else {
                    continue;
                };
                let st = self.store.state().clone();
                let checksum = st
                    .applied
                    .iter()
                    .find(|a| a.id == m.id)
                    .map(|a| a.checksum.clone())
                    .unwrap_or_default();
                let (_, n) = backfill(
                    self.store,
                    st,
                    m,
                    &checksum,
                    i,
                    &s.step,
                    sp,
                    e,
                    self.settings.progress.clone(),
                    self.settled_at.get(space).copied(),
                    self.settings.executors.get(embedder).cloned(),
                    (None, crate::gradual::SampleVectors::new()),
                )
                .await?;
                self.settled_at.insert(space.clone(), n.settled);
            }
        }
        self.base = self.store.dataset().clone();
        Ok(())
    }

    /// The context-loss report of what this apply committed. The migrations are
    /// committed: the report is best-effort, a failure is logged, never an error.
    async fn context_report(&mut self) -> Result<()> {
        let (before_v, after_v) = (self.report.version_before, self.report.version_after);
        if self.settings.dry_run || after_v == before_v {
            return Ok(());
        }
        let before = self.store.dataset().checkout_version(before_v).await?;
        let before_state = crate::store::read_state(&before).await?.unwrap_or_default();
        match crate::checks::context::context_loss(
            &before,
            &before_state,
            self.store.dataset(),
            self.store.state(),
        )
        .await
        {
            Ok(c) => self.report.context = Some(c),
            Err(e) => tracing::warn!(
                error = %e,
                "the context-loss report of versions {before_v}..{after_v} could not be computed"
            ),
        }
        Ok(())
    }
}

/// The in-flight record of migration `m` starting at `version`.
fn in_flight(m: &Migration, pm: &PlannedMigration, version: u64) -> InFlight {
    InFlight {
        id: m.id,
        file: m.file.clone(),
        description: m.description.clone(),
        content_hash: m.content_hash.clone(),
        checksum: pm.checksum.clone(),
        steps_done: 0,
        steps_total: m.steps.len(),
        started_at: now(),
        started_version: version,
        checkpoint: None,
        reports: vec![],
        compat: None,
    }
}

/// The history entry of step `i` of `m` (a `migration` entry for its last step).
fn step_entry(m: &Migration, pm: &PlannedMigration, i: usize, state: &StoreState) -> HistoryEntry {
    let last = i + 1 == m.steps.len();
    let mut entry = HistoryEntry::new(
        if last {
            Action::Migration
        } else {
            Action::Step
        },
        now(),
    );
    entry.migration = Some(m.id);
    entry.file = Some(m.file.clone());
    entry.checksum = Some(pm.checksum.clone());
    entry.active_space.clone_from(&state.active_space);
    entry
}

/// The error of a blocked step: every blocking result, and the step's report.
fn blocked(m: &Migration, i: usize, report: StepReport) -> StoreError {
    let details = report
        .invariants
        .iter()
        .filter(|r| r.blocks())
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("\n");
    StoreError::InvariantViolation {
        file: m.file.clone(),
        step: i + 1,
        op: m.steps[i].step.op().into(),
        details,
        report: Box::new(report),
    }
}

/// RFC 3339 time `secs` from now.
fn due_after(secs: u64) -> String {
    let d = chrono::Duration::seconds(i64::try_from(secs).unwrap_or(i64::MAX / 1000));
    (chrono::Utc::now() + d).to_rfc3339()
}

fn elapsed_ms(t: Instant) -> u64 {
    u64::try_from(t.elapsed().as_millis()).unwrap_or(u64::MAX)
}
