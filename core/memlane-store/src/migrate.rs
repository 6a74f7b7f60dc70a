//! The migrator: applies pending migrations step by step, one Lance commit per step,
//! each carrying the new state and its history entry; invariants are checked on the
//! staged (detached) version before the step is committed.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow::array::{Array, AsArray, RecordBatch};
use futures::TryStreamExt;
use lance::Dataset;
use memlane_core::invariant::{
    VectorAudit, builtin_invariants, expression, row_count, rows_accounted,
};
use memlane_core::schema::ID;
use memlane_core::state::InFlight;
use memlane_core::{
    Action, AppliedMigration, ApplyReport, CheckKind, HistoryEntry, InvariantResult, InvariantSpec,
    Migration, MigrationOutcome, MigrationReport, Plan, StepReport, StoreState,
};

use crate::embed::Embedder;
use crate::engine::commit::{self as engine, Conflict, Options, Record, conflict};
use crate::engine::files;
use crate::error::{Result, StoreError};
use crate::lock;
use crate::ops::{Ctx, Progress, ProgressFn, stage};
use crate::store::{Store, now};

/// Builder of an apply: `store.migrator(migrations).embedder(..).apply().await`.
pub struct Migrator<'a> {
    store: &'a mut Store,
    migrations: Vec<Migration>,
    embedders: HashMap<String, Arc<dyn Embedder>>,
    dry_run: bool,
    to: Option<u32>,
    progress: Option<ProgressFn>,
    holder: String,
    lease: Duration,
    approve: Option<String>,
    invariants: Vec<InvariantSpec>,
}

impl Store {
    /// Start an apply of `migrations` (a parsed folder).
    pub fn migrator(&mut self, migrations: Vec<Migration>) -> Migrator<'_> {
        Migrator {
            store: self,
            migrations,
            embedders: HashMap::new(),
            dry_run: false,
            to: None,
            progress: None,
            holder: "memlane".into(),
            lease: Duration::from_secs(60),
            approve: None,
            invariants: Vec::new(),
        }
    }

    /// Lint a migrations folder on its own (no store: planned against a fresh store,
    /// the `memlane lint` of a CI job without a store at hand), with its SQL predicates
    /// checked against the fields a fresh store and the migrations give.
    pub fn lint_fresh(migrations: &[Migration]) -> Result<Plan> {
        let mut plan = memlane_core::plan(&memlane_core::Snapshot::fresh(), migrations)?;
        let base = crate::convert::base_schema(false, &[], &[]);
        let bad = crate::predicates::check(&base, &plan, migrations);
        plan.findings.extend(bad);
        Ok(plan)
    }

    /// The plan of applying `migrations` (chain checked, steps linted, SQL predicates
    /// planned against the fields); refused when the store's record is broken.
    pub async fn plan(&self, migrations: &[Migration]) -> Result<Plan> {
        self.ensure_intact()?;
        let mut plan = memlane_core::plan(&self.snapshot().await?, migrations)?;
        let bad = crate::predicates::check(&self.schema(), &plan, migrations);
        plan.findings.extend(bad);
        Ok(plan)
    }
}

impl<'a> Migrator<'a> {
    /// Supply an embedder under the name migration files use.
    #[must_use]
    pub fn embedder(mut self, name: impl Into<String>, e: Arc<dyn Embedder>) -> Self {
        self.embedders.insert(name.into(), e);
        self
    }

    /// Stage and check every step without committing anything.
    #[must_use]
    pub fn dry_run(mut self, yes: bool) -> Self {
        self.dry_run = yes;
        self
    }

    /// Approve compatibility gates that ask for review (the reason is recorded in the
    /// Store-level invariants (a folder's `invariants.toml`, see
    /// [`crate::read_invariants`]), checked after every step of every migration.
    pub fn invariants(mut self, specs: Vec<InvariantSpec>) -> Self {
        self.invariants = specs;
        self
    }

    /// history with who and when). Blocks stay blocks.
    #[must_use]
    pub fn approve(mut self, reason: Option<String>) -> Self {
        self.approve = reason;
        self
    }

    /// Stop after the migration with this id.
    #[must_use]
    pub fn to(mut self, id: Option<u32>) -> Self {
        self.to = id;
        self
    }

    /// Progress callback.
    #[must_use]
    pub fn progress(mut self, f: ProgressFn) -> Self {
        self.progress = Some(f);
        self
    }

    /// Who holds the lock (shown to a second migrator).
    #[must_use]
    pub fn holder(mut self, h: impl Into<String>) -> Self {
        self.holder = h.into();
        self
    }

    /// Lease of the migration lock (renewed while working).
    #[must_use]
    pub fn lease(mut self, d: Duration) -> Self {
        self.lease = d;
        self
    }

    /// Apply. Returns the report; a blocked step (invariant) is reported with outcome
    /// `Blocked` and returned as [`StoreError::InvariantViolation`].
    pub async fn apply(self) -> Result<ApplyReport> {
        let Migrator {
            store,
            migrations,
            embedders,
            dry_run,
            to,
            progress,
            holder,
            lease,
            approve,
            invariants: store_invariants,
        } = self;
        let _guard = if dry_run {
            None
        } else {
            Some(lock::acquire(store.uri(), &holder, lease)?)
        };
        store.refresh().await?;
        store.ensure_intact()?;
        if !dry_run {
            ensure_tags(store).await?;
            // replaced spaces whose retention has passed are dropped first
            store.contract_due_locked().await?;
        }
        let started = Instant::now();
        let plan = store.plan(&migrations).await?;
        plan.ensure_clean()?;
        // no op adds rows or changes `id` (lint refuses edits of it) and removing rows
        // keeps ids unique: uniqueness is scanned once per apply and carried forward
        let mut ids_checked: Option<(u64, InvariantResult)> = None;
        // per space: where a backfill in this apply left it (later ones read the delta)
        let mut settled_at: HashMap<String, crate::gradual::Settled> = HashMap::new();
        let mut report = ApplyReport {
            version_before: store.version(),
            version_after: store.version(),
            dry_run,
            ..Default::default()
        };
        for pm in plan
            .migrations
            .iter()
            .filter(|m| to.is_none_or(|t| m.id <= t))
        {
            let m = migrations
                .iter()
                .find(|x| x.id == pm.id)
                .ok_or_else(|| StoreError::Input(format!("migration {} vanished", pm.id)))?;
            for (s, planned) in m.steps.iter().zip(&pm.steps) {
                if let memlane_core::Step::Reembed { embedder, .. } = &s.step
                    && !planned.done
                    && !embedders.contains_key(embedder)
                {
                    return Err(StoreError::MissingEmbedder {
                        file: m.file.clone(),
                        name: embedder.clone(),
                    });
                }
            }
        }
        // the dataset steps build on: the store's head, or the last staged version in a dry run
        let mut base: Arc<Dataset> = store.ds.clone();
        let mut state = store.state.clone();
        for pm in plan
            .migrations
            .iter()
            .filter(|m| to.is_none_or(|t| m.id <= t))
        {
            let m = migrations
                .iter()
                .find(|x| x.id == pm.id)
                .ok_or_else(|| StoreError::Input(format!("migration {} vanished", pm.id)))?;
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
                outcome: if dry_run {
                    MigrationOutcome::DryRun
                } else {
                    MigrationOutcome::Applied
                },
                resumed: pm.resumes,
                steps: vec![],
            };
            if state.in_flight.is_none() {
                state.in_flight = Some(InFlight {
                    id: m.id,
                    file: m.file.clone(),
                    description: m.description.clone(),
                    content_hash: m.content_hash.clone(),
                    checksum: pm.checksum.clone(),
                    steps_done: 0,
                    steps_total: m.steps.len(),
                    started_at: now(),
                    started_version: base.version_id(),
                    checkpoint: None,
                    reports: vec![],
                    compat: None,
                });
            }
            'steps: for (i, s) in m.steps.iter().enumerate().skip(first) {
                let t0 = Instant::now();
                // a re-embed backfills in checkpoint commits first (or, in a dry run,
                // tries the embedder on a sample)
                // a commit preempted by a concurrent writer is staged again on the new head
                let mut attempt = 0u32;
                let mut reembedded = None;
                let mut settled = None;
                let mut prev_invariants: Option<Vec<InvariantResult>> = None;
                let (committed, mut sreport, new_state) = loop {
                    attempt += 1;
                    if let memlane_core::Step::Reembed {
                        space,
                        embedder,
                        source,
                        ..
                    } = &s.step
                    {
                        let sp = state
                            .space(space)
                            .cloned()
                            .ok_or_else(|| StoreError::unknown_space(space, &state))?;
                        let e = embedders.get(embedder).cloned().ok_or_else(|| {
                            StoreError::MissingEmbedder {
                                file: m.file.clone(),
                                name: embedder.clone(),
                            }
                        })?;
                        let sp = calibrate(
                            store,
                            &mut state,
                            m,
                            &s.step,
                            sp,
                            &e,
                            approve.as_deref(),
                            dry_run,
                        )
                        .await?;
                        if dry_run {
                            reembedded = Some(
                                crate::gradual::sample(&base, &sp, embedder, e.as_ref(), source)
                                    .await?,
                            );
                        } else {
                            let (st, n) = backfill(
                                store,
                                state.clone(),
                                m,
                                &pm.checksum,
                                i,
                                &s.step,
                                sp,
                                e,
                                progress.clone(),
                                settled_at.get(space).copied(),
                            )
                            .await?;
                            state = st;
                            base = store.ds.clone();
                            reembedded = Some(reembedded.unwrap_or(0) + n.embedded);
                            settled = Some(n.settled);
                            settled_at.insert(space.clone(), n.settled);
                        }
                    }
                    let rows_before = base.count_rows(None).await? as u64;
                    let ctx = Ctx {
                        ds: &base,
                        state: &state,
                        progress: progress.clone().map(|f| {
                            (
                                f,
                                Progress {
                                    migration: m.id,
                                    step: i,
                                    steps: m.steps.len(),
                                    op: s.step.op().into(),
                                    done: 0,
                                    total: rows_before,
                                },
                            )
                        }),
                    };
                    let mut staged = stage(&ctx, &s.step).await?;
                    staged.settled = settled.map(|st| st.version);
                    if let (Some(st), memlane_core::Step::Reembed { space, .. }) =
                        (settled, &s.step)
                        && let Some(sp) = state.space(space)
                    {
                        // every row as of the settled version has a vector the embedder
                        // output checks (or its writer) validated: no need to read back
                        staged.checked_as_written.push((
                            sp.column.clone(),
                            crate::ops::Tally {
                                valid: 0,
                                invalid: 0,
                                nulls: st.without_text,
                            },
                        ));
                    }
                    if let Some(n) = reembedded {
                        staged.rows_written = n;
                        if dry_run {
                            staged.sampled = std::mem::take(&mut staged.written_vectors);
                        }
                    }
                    let last = i + 1 == m.steps.len();
                    let mut new_state = staged.state.clone();
                    // a re-embed with a retention schedules the drop of the space it replaced
                    if let memlane_core::Step::Reembed {
                        space,
                        contract_after: Some(keep),
                        compare_to,
                        ..
                    } = &s.step
                    {
                        let old = compare_to
                            .clone()
                            .or_else(|| state.active_space.clone())
                            .filter(|o| o != space && new_state.space(o).is_some());
                        if let (Some(old), Ok(secs)) =
                            (old, memlane_core::migration::parse_duration(keep))
                        {
                            new_state.pending_contracts.retain(|p| p.space != old);
                            new_state
                                .pending_contracts
                                .push(memlane_core::PendingContract {
                                    due: due_after(secs),
                                    space: old,
                                    retention: keep.clone(),
                                    migration: m.id,
                                });
                        }
                    }
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
                    entry.active_space.clone_from(&new_state.active_space);
                    // stage the commit detached, check invariants on exactly what would land
                    let digests = files::added_digests(&base, &staged.op).await?;
                    let detached = Arc::new(
                        engine::commit_with_files(
                            &base,
                            staged.op.clone(),
                            Record {
                                state: Some(&new_state),
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
                    // a metadata-only step preempted by a writer's append is staged again
                    // on the new head and committed at once: its checks already passed and
                    // the appended rows were validated by their writer
                    let metadata_only = pm.steps[i].effect == memlane_core::Effect::Metadata
                        && !matches!(s.step, memlane_core::Step::Reembed { .. });
                    let tcheck = Instant::now();
                    let invariants = match prev_invariants.take().filter(|_| metadata_only) {
                        Some(prev) => prev,
                        None => {
                            check(
                                &detached,
                                &base,
                                s.step.touches_field(memlane_core::schema::CONTENT),
                                &state,
                                &new_state,
                                &staged,
                                rows_before,
                                &[m.invariants.as_slice(), store_invariants.as_slice()].concat(),
                                &mut ids_checked,
                            )
                            .await?
                        }
                    };
                    crate::prof(&format!("check step {i}"), tcheck);
                    let mut sreport = StepReport {
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
                            .then(|| state.in_flight.as_ref().and_then(|f| f.compat.clone()))
                            .flatten(),
                    };
                    if sreport.blocked() {
                        sreport.duration_ms = elapsed_ms(t0);
                        let details = sreport
                            .invariants
                            .iter()
                            .filter(|r| r.blocks())
                            .map(ToString::to_string)
                            .collect::<Vec<_>>()
                            .join("\n");
                        mreport.outcome = MigrationOutcome::Blocked;
                        mreport.steps.push(sreport.clone());
                        report.migrations.push(mreport);
                        report.duration_ms = elapsed_ms(started);
                        return Err(StoreError::InvariantViolation {
                            file: m.file.clone(),
                            step: i + 1,
                            op: s.step.op().into(),
                            details,
                            report: Box::new(sreport),
                        });
                    }
                    if dry_run {
                        sreport.duration_ms = elapsed_ms(t0);
                        mreport.steps.push(sreport);
                        base = detached;
                        state = new_state;
                        continue 'steps;
                    }
                    // record the step in the state it commits
                    let Some(mut flight) = state.in_flight.clone().map(|mut f| {
                        f.checkpoint = None;
                        f.compat = None;
                        f
                    }) else {
                        unreachable!("in-flight set above")
                    };
                    flight.steps_done = i + 1;
                    sreport.duration_ms = elapsed_ms(t0);
                    flight.reports.push(sreport.clone());
                    if last {
                        new_state.in_flight = None;
                        new_state.applied.push(AppliedMigration {
                            id: m.id,
                            file: m.file.clone(),
                            description: m.description.clone(),
                            content_hash: m.content_hash.clone(),
                            checksum: pm.checksum.clone(),
                            applied_at: now(),
                            repairs: vec![],
                        });
                    } else {
                        new_state.in_flight = Some(flight);
                    }
                    if let Some(a) = sreport.compat.as_ref().and_then(|c| c.approval.as_ref()) {
                        entry.reason = Some(format!(
                            "review approved by {} at {}: {}",
                            a.by, a.at, a.reason
                        ));
                    }
                    entry.report = Some(sreport.clone());
                    let r = engine::commit_with_files(
                        &base,
                        staged.op,
                        Record {
                            state: Some(&new_state),
                            entry: &entry,
                        },
                        digests,
                        Options::default(),
                    )
                    .await;
                    match r {
                        Ok(c) => break (c, sreport, new_state),
                        Err(e) if attempt < 50 && conflict(&e) == Some(Conflict::Retryable) => {
                            prev_invariants = Some(sreport.invariants.clone());
                            store.refresh_data().await?;
                            base = store.ds.clone();
                        }
                        Err(e) => return Err(e),
                    }
                };
                sreport.version = Some(committed.version_id());
                base = Arc::new(committed);
                store.set_head(base.clone(), Some(new_state.clone()));
                state = new_state;
                if i + 1 == m.steps.len() {
                    // the tag marks the commit that completed the migration (not where a
                    // catch-up after it ended); after a restore and a re-apply it moves
                    tag_migration(store, m, base.version_id()).await?;
                }
                // rows a writer added while the step completed: catch them up now
                if let memlane_core::Step::Reembed {
                    space, embedder, ..
                } = &s.step
                    && let (Some(sp), Some(e)) = (
                        state.space(space).cloned(),
                        embedders.get(embedder).cloned(),
                    )
                {
                    let tb = Instant::now();
                    let (st, n) = backfill(
                        store,
                        state.clone(),
                        m,
                        &pm.checksum,
                        i,
                        &s.step,
                        sp,
                        e,
                        progress.clone(),
                        settled_at.get(space).copied(),
                    )
                    .await?;
                    settled_at.insert(space.clone(), n.settled);
                    crate::prof("post-complete catch-up", tb);
                    state = st;
                    base = store.ds.clone();
                    sreport.rows_written += n.embedded;
                }
                mreport.steps.push(sreport);
            }
            report.migrations.push(mreport);
        }
        // writes that raced a completed re-embed of the active space: catch them up
        // whenever its embedder is at hand (cheap when there is nothing to do)
        if !dry_run && store.state.in_flight.is_none() {
            let active = store.state.active_space.clone();
            let applied: Vec<u32> = store.state.applied.iter().map(|a| a.id).collect();
            for m in migrations.iter().filter(|m| applied.contains(&m.id)) {
                for (i, s) in m.steps.iter().enumerate() {
                    if let memlane_core::Step::Reembed {
                        space, embedder, ..
                    } = &s.step
                        && active.as_deref() == Some(space.as_str())
                        && let (Some(sp), Some(e)) = (
                            store.state.space(space).cloned(),
                            embedders.get(embedder).cloned(),
                        )
                    {
                        let st = store.state.clone();
                        let checksum = store
                            .state
                            .applied
                            .iter()
                            .find(|a| a.id == m.id)
                            .map(|a| a.checksum.clone())
                            .unwrap_or_default();
                        let (_, n) = backfill(
                            store,
                            st,
                            m,
                            &checksum,
                            i,
                            &s.step,
                            sp,
                            e,
                            progress.clone(),
                            settled_at.get(space).copied(),
                        )
                        .await?;
                        settled_at.insert(space.clone(), n.settled);
                    }
                }
            }
            base = store.ds.clone();
        }
        report.version_after = base.version_id();
        if !dry_run && report.version_after != report.version_before {
            let before = store.ds.checkout_version(report.version_before).await?;
            let before_state = crate::store::read_state(&before).await?.unwrap_or_default();
            let tc = Instant::now();
            // the migrations are committed: the report is best-effort, never an error
            match crate::validate::context_loss(&before, &before_state, &store.ds, &store.state)
                .await
            {
                Ok(c) => report.context = Some(c),
                Err(e) => crate::prof(&format!("context-loss report failed ({e})"), tc),
            }
            crate::prof("context-loss report", tc);
        }
        report.duration_ms = elapsed_ms(started);
        Ok(report)
    }
}

/// Run the gradual backfill of a `reembed` step; returns the state it left (with the
/// checkpoint) and the rows it embedded.
#[allow(clippy::too_many_arguments)]
async fn backfill(
    store: &mut Store,
    state: StoreState,
    m: &Migration,
    checksum: &str,
    i: usize,
    step: &memlane_core::Step,
    space: memlane_core::Space,
    e: Arc<dyn Embedder>,
    progress: Option<ProgressFn>,
    since: Option<crate::gradual::Settled>,
) -> Result<(StoreState, crate::gradual::Outcome)> {
    let memlane_core::Step::Reembed {
        embedder,
        source,
        batch_size,
        throttle,
        checkpoint_seconds,
        ..
    } = step
    else {
        return Ok((state, crate::gradual::Outcome::default()));
    };
    crate::compat::check_fingerprint(&space, embedder, &e, &store.checked)?;
    let mut g = crate::gradual::Gradual {
        state,
        store,
        space,
        batch: batch_size.unwrap_or_else(|| e.batch_size()),
        embedder: e,
        embedder_name: embedder.clone(),
        source: source.clone(),
        throttle: *throttle,
        checkpoint_secs: checkpoint_seconds.unwrap_or(10.0),
        since,
        progress: progress.map(|f| {
            (
                f,
                Progress {
                    migration: m.id,
                    step: i,
                    steps: m.steps.len(),
                    op: "reembed".into(),
                    done: 0,
                    total: 0,
                },
            )
        }),
        migration: m.id,
        step: i,
        file: m.file.clone(),
        checksum: checksum.to_owned(),
    };
    let out = g.run().await?;
    Ok((g.state, out))
}

/// Before a re-embed backfills (once; a resumed run finds the result in the in-flight
/// state): check the embedder against the target space's fingerprint, or record one;
/// compare the new space to the one it replaces on a sample, with the declared mode and
/// the migration's gates (a block or an unapproved review is an error, nothing
/// committed); keep the adapter for new-model queries against the old space. Returns
/// the target space as the state now has it.
#[allow(clippy::too_many_arguments)]
async fn calibrate(
    store: &Store,
    state: &mut StoreState,
    m: &Migration,
    step: &memlane_core::Step,
    mut sp: memlane_core::Space,
    e: &Arc<dyn Embedder>,
    approve: Option<&str>,
    dry_run: bool,
) -> Result<memlane_core::Space> {
    let memlane_core::Step::Reembed {
        space,
        embedder,
        source,
        compare_to,
        mode,
        sample,
        k,
        ..
    } = step
    else {
        return Ok(sp);
    };
    if state
        .in_flight
        .as_ref()
        .and_then(|f| f.compat.as_ref())
        .is_some_and(|c| c.to == *space)
    {
        return Ok(sp);
    }
    if sp.fingerprint.is_some() {
        crate::compat::check_fingerprint(&sp, embedder, e, &store.checked)?;
    } else {
        let fp = crate::compat::record_fingerprint(&sp, embedder, e.as_ref())?;
        store.checked.insert(&sp.name, e);
        sp.fingerprint = Some(fp.clone());
        if let Some(x) = state.spaces.iter_mut().find(|x| x.name == *space) {
            x.fingerprint = Some(fp);
        }
    }
    let old = compare_to
        .clone()
        .or_else(|| state.active_space.clone())
        .filter(|o| o != space);
    let Some(old) = old else {
        return Ok(sp);
    };
    let old = state
        .space(&old)
        .cloned()
        .ok_or_else(|| StoreError::UnknownSpace {
            name: old.clone(),
            known: state
                .spaces
                .iter()
                .map(|s| s.name.as_str())
                .collect::<Vec<_>>()
                .join(", "),
        })?;
    let check = crate::compat::check_reembed(
        store,
        &crate::compat::CheckSpec {
            old: &old,
            new: &sp,
            embedder_name: embedder,
            embedder: e.as_ref(),
            source,
            sample: sample.unwrap_or(crate::compat::DEFAULT_SAMPLE),
            k: k.unwrap_or(10),
            mode: *mode,
            gates: &m.gates,
            migration: m.id,
            file: &m.file,
            approve,
            keep_adapter: !dry_run,
        },
    )
    .await?;
    if let Some(a) = &check.adapter
        && !state.adapters.contains(a)
    {
        state.adapters.push(a.clone());
    }
    if let Some(f) = state.in_flight.as_mut() {
        f.compat = Some(check);
    }
    Ok(sp)
}

/// RFC 3339 time `secs` from now.
fn due_after(secs: u64) -> String {
    let d = chrono::Duration::seconds(i64::try_from(secs).unwrap_or(i64::MAX / 1000));
    (chrono::Utc::now() + d).to_rfc3339()
}

fn elapsed_ms(t: Instant) -> u64 {
    u64::try_from(t.elapsed().as_millis()).unwrap_or(u64::MAX)
}

/// The tag of an applied migration, e.g. `migration-0003-add-topic`.
pub fn migration_tag(m: &Migration) -> String {
    format!("migration-{:04}-{}", m.id, m.slug.replace('_', "-"))
}

/// Point the tag of migration `m` at `version` (created, or moved forward).
async fn tag_migration(store: &Store, m: &Migration, version: u64) -> Result<()> {
    set_tag(store, &migration_tag(m), version).await
}

async fn set_tag(store: &Store, tag: &str, version: u64) -> Result<()> {
    let tags = store.dataset().tags();
    match tags.create(tag, version).await {
        Err(lance::Error::RefConflict { .. }) => tags.update(tag, version).await?,
        other => other?,
    }
    Ok(())
}

/// Put the tags of applied migrations where they belong: at the commit that last
/// completed each (a crash between commit and tag leaves one missing; stores written by
/// earlier versions placed it after a catch-up).
async fn ensure_tags(store: &Store) -> Result<()> {
    if store.state.applied.is_empty() {
        return Ok(());
    }
    let tags = store.tags().await?;
    let history = store.history().await?;
    for a in &store.state.applied {
        let Some(item) = history.iter().rev().find(|h| {
            h.entry
                .as_ref()
                .is_some_and(|e| e.action == Action::Migration && e.migration == Some(a.id))
        }) else {
            continue;
        };
        let prefix = format!("migration-{:04}-", a.id);
        let tag = match tags.iter().find(|(n, _)| n.starts_with(&prefix)) {
            Some((_, v)) if *v == item.version => continue,
            Some((n, _)) => n.clone(),
            None => {
                let slug = a
                    .file
                    .trim_end_matches(".toml")
                    .split_once('_')
                    .map_or("", |(_, s)| s)
                    .replace('_', "-");
                format!("{prefix}{slug}")
            }
        };
        set_tag(store, &tag, item.version).await?;
    }
    Ok(())
}

/// Evaluate the built-in and declared invariants on the staged version.
#[allow(clippy::too_many_arguments)]
async fn check(
    staged: &Arc<Dataset>,
    base: &Dataset,
    touches_content: bool,
    before: &StoreState,
    after: &StoreState,
    st: &crate::ops::Staged,
    rows_before: u64,
    declared: &[InvariantSpec],
    ids_checked: &mut Option<(u64, InvariantResult)>,
) -> Result<Vec<InvariantResult>> {
    // declared specs override the built-in of the same kind
    let mut specs: Vec<InvariantSpec> = builtin_invariants()
        .into_iter()
        .filter(|b| {
            !declared
                .iter()
                .any(|d| d.check == b.check && d.space.is_none() && d.name.is_none())
        })
        .collect();
    specs.extend(declared.iter().cloned());
    let rows_after = staged.count_rows(None).await? as u64;
    let mut out = Vec::new();
    for spec in &specs {
        match spec.check {
            CheckKind::RowsAccounted => out.push(rows_accounted(
                spec,
                rows_before,
                st.rows_deleted,
                0,
                rows_after,
            )),
            CheckKind::RowCount => out.push(row_count(spec, rows_after)),
            CheckKind::IdsUnique => {
                let r = match ids_checked.as_ref().filter(|(_, r)| r.passed) {
                    Some((v, r)) => {
                        let mut r = r.clone();
                        r.name = spec.label();
                        r.total = rows_after;
                        r.message = format!(
                            "{rows_after} ids, unique and non-null (scanned {v} ids earlier in this apply; steps do not change ids)"
                        );
                        r
                    }
                    None => {
                        let r = audit_ids(staged, spec).await?;
                        *ids_checked = Some((r.total, r.clone()));
                        r
                    }
                };
                out.push(r);
            }
            CheckKind::VectorsValid => {
                let spaces: Vec<&memlane_core::Space> = match &spec.space {
                    Some(name) => after.space(name).into_iter().collect(),
                    None => {
                        // what this step can have changed: written columns, and a newly
                        // active space; untouched columns were checked when written
                        let newly_active = (after.active_space != before.active_space)
                            .then(|| after.active())
                            .flatten();
                        // spaces a declared spec names are checked by that spec
                        let named = |s: &memlane_core::Space| {
                            declared.iter().any(|d| {
                                d.check == CheckKind::VectorsValid
                                    && d.space.as_deref() == Some(s.name.as_str())
                            })
                        };
                        after
                            .spaces
                            .iter()
                            .filter(|s| {
                                st.written_vectors.contains(&s.column)
                                    || newly_active.is_some_and(|a| a.name == s.name)
                            })
                            .filter(|s| !named(s))
                            .collect()
                    }
                };
                for space in spaces {
                    if st.sampled.contains(&space.column) {
                        out.push(InvariantResult::from_counts(
                            format!("vectors_valid[{}]", space.name),
                            CheckKind::VectorsValid,
                            spec.severity,
                            spec.mostly,
                            0,
                            0,
                            vec![],
                            format!("dry run: the embedder was checked on a sample; {} rows would be embedded", st.rows_written),
                        ));
                        continue;
                    }
                    let required = after.active_space.as_deref() == Some(space.name.as_str());
                    // every produced vector valid (and none missing where required): the
                    // column need not be read back
                    let clean = st
                        .checked_as_written
                        .iter()
                        .find(|(c, _)| *c == space.column)
                        .is_some_and(|(_, t)| t.invalid == 0 && (!required || t.nulls == 0));
                    if clean {
                        let rows = staged.count_rows(None).await? as u64;
                        let name = if spec.space.is_some() {
                            spec.label()
                        } else {
                            format!("vectors_valid[{}]", space.name)
                        };
                        out.push(InvariantResult::from_counts(
                            name,
                            CheckKind::VectorsValid,
                            spec.severity,
                            spec.mostly,
                            rows,
                            0,
                            vec![],
                            format!(
                                "{rows} vectors of `{}` valid (checked as written)",
                                space.name
                            ),
                        ));
                        continue;
                    }
                    // an online re-embed settles at version V: rows written after V by
                    // others are the catch-up lag, embedded right after completion
                    let scope = st.settled.filter(|_| st.written_vectors.contains(&space.column)).map(|v| {
                        format!("_row_created_at_version <= {v} AND _row_last_updated_at_version <= {v}")
                    });
                    let mut r =
                        audit_vectors(staged, space, required, spec, scope.as_deref()).await?;
                    if let Some(v) = st.settled.filter(|_| scope.is_some()) {
                        r.message.push_str(&format!(
                            " (rows as of version {v}; later writes are caught up after completion)"
                        ));
                    }
                    out.push(r);
                }
            }
            CheckKind::Expression => out.push(expression_check(staged, spec).await?),
            CheckKind::IdsPreserved
            | CheckKind::ContentUnchanged
            | CheckKind::Field
            | CheckKind::References
            | CheckKind::Duplicates
            | CheckKind::Lifecycle => {
                if spec.check == CheckKind::ContentUnchanged && touches_content {
                    out.push(InvariantResult::from_counts(
                        spec.label(),
                        spec.check,
                        spec.severity,
                        1.0,
                        0,
                        0,
                        vec![],
                        "the step rewrites `content`; not compared".to_owned(),
                    ));
                } else {
                    out.extend(
                        crate::validate::evaluate(spec, staged, Some(base), after, st.rows_deleted)
                            .await?,
                    );
                }
            }
        }
    }
    Ok(out)
}

/// A declared SQL expression over the live rows of `ds`.
pub(crate) async fn expression_check(
    staged: &Dataset,
    spec: &InvariantSpec,
) -> Result<InvariantResult> {
    let rows_after = staged.count_rows(None).await? as u64;
    let expr = spec.expr.clone().unwrap_or_default();
    let negated = format!("NOT COALESCE(({expr}), false)");
    let failed = staged
        .count_rows(Some(negated.clone()))
        .await
        .map_err(|e| {
            StoreError::Input(format!(
                "invariant expression `{expr}` cannot be evaluated: {e}"
            ))
        })? as u64;
    let samples = if failed > 0 {
        scan(
            staged,
            &[ID],
            Some(&negated),
            Some(memlane_core::report::SAMPLE_IDS),
        )
        .await?
        .iter()
        .flat_map(|b| {
            b.column(0)
                .as_string::<i32>()
                .iter()
                .flatten()
                .map(str::to_owned)
                .collect::<Vec<_>>()
        })
        .collect()
    } else {
        vec![]
    };
    Ok(expression(spec, rows_after, failed, samples))
}

/// Ids unique and non-null over all live rows of `ds`.
pub(crate) async fn audit_ids(ds: &Dataset, spec: &InvariantSpec) -> Result<InvariantResult> {
    crate::validate::ids_unique(ds, spec).await
}

/// Every live row's vector of `space` valid (and present when `required`).
pub(crate) async fn audit_vectors(
    ds: &Dataset,
    space: &memlane_core::Space,
    required: bool,
    spec: &InvariantSpec,
    filter: Option<&str>,
) -> Result<InvariantResult> {
    let mut audit = VectorAudit::new(space.clone()).with_norm_range(spec.min_norm, spec.max_norm);
    let mut stream = scan_stream(ds, &[ID, space.column.as_str()], filter).await?;
    while let Some(b) = stream.try_next().await? {
        feed_vectors(
            &mut audit,
            b.column(0).as_string::<i32>(),
            b.column(1).as_fixed_size_list(),
            required,
        );
    }
    Ok(audit.finish(spec))
}

/// Feed one batch's vectors (with their ids) to `audit`.
pub(crate) fn feed_vectors(
    audit: &mut VectorAudit,
    ids: &arrow::array::StringArray,
    v: &arrow::array::FixedSizeListArray,
    required: bool,
) {
    let vals = v
        .values()
        .as_primitive::<arrow::datatypes::Float32Type>()
        .values();
    #[allow(clippy::cast_sign_loss)]
    let d = v.value_length() as usize;
    for i in 0..v.len() {
        #[allow(clippy::cast_sign_loss)]
        let off = v.value_offset(i) as usize;
        audit.feed(
            ids.value(i),
            v.is_valid(i).then(|| &vals[off..off + d]),
            required,
        );
    }
}

async fn scan(
    ds: &Dataset,
    cols: &[&str],
    filter: Option<&str>,
    limit: Option<usize>,
) -> Result<Vec<RecordBatch>> {
    let mut s = ds.scan();
    s.project(cols)?;
    if let Some(f) = filter {
        s.filter(f)?;
    }
    if let Some(l) = limit {
        s.limit(Some(i64::try_from(l).unwrap_or(i64::MAX)), None)?;
    }
    Ok(s.try_into_stream().await?.try_collect().await?)
}

/// A streaming scan: batches one at a time (memory stays flat as the store grows).
pub(crate) async fn scan_stream(
    ds: &Dataset,
    cols: &[&str],
    filter: Option<&str>,
) -> Result<lance::dataset::scanner::DatasetRecordBatchStream> {
    let mut s = ds.scan();
    s.project(cols)?;
    if let Some(f) = filter {
        s.filter(f)?;
    }
    Ok(s.try_into_stream().await?)
}
