//! The migrator: applies pending migrations step by step, one Lance commit per step,
//! each carrying the new state and its history entry; invariants are checked on the
//! staged (detached) version before the step is committed.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tracing::Instrument;

use memlane_core::{ApplyReport, InvariantSpec, Migration, Plan};

use crate::embed::Embedder;
use crate::error::Result;
use crate::gradual::FragmentExecutor;
use crate::ops::ProgressFn;
use crate::store::Store;

mod reembed;
mod run;
mod tags;

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
    executors: HashMap<String, Arc<dyn FragmentExecutor>>,
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
            executors: HashMap::new(),
        }
    }

    /// Start an apply of a migrations folder: its migrations, checked with its
    /// store-level invariants.
    pub fn migrator_for(&mut self, folder: crate::readers::MigrationFolder) -> Migrator<'_> {
        self.migrator(folder.migrations)
            .invariants(folder.invariants)
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

    /// Backfill the re-embeds that use embedder `name` on `executor`'s workers (each
    /// fragment embedded and written by a worker, committed here): the distributed
    /// path of a re-embed, same gates, history, resume and catch-up. The embedder given
    /// under the same name still serves the driver's own calls (fingerprint, the
    /// compatibility sample, rows a writer changed after completion).
    #[must_use]
    pub fn executor(
        mut self,
        name: impl Into<String>,
        executor: Arc<dyn FragmentExecutor>,
    ) -> Self {
        self.executors.insert(name.into(), executor);
        self
    }

    /// Stage and check every step without committing anything.
    #[must_use]
    pub fn dry_run(mut self, yes: bool) -> Self {
        self.dry_run = yes;
        self
    }

    /// Store-level invariants (a folder's `invariants.toml`, see
    /// [`crate::readers::read_invariants`]), checked after every step of every migration.
    #[must_use]
    pub fn invariants(mut self, specs: Vec<InvariantSpec>) -> Self {
        self.invariants = specs;
        self
    }

    /// Approve compatibility gates that ask for review (the reason is recorded in the
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
            invariants,
            executors,
        } = self;
        let _guard = if dry_run {
            None
        } else {
            Some(store.lock_for(&holder, lease).await?)
        };
        // what the apply is doing goes into the lock file too, for `status`
        let progress = match &_guard {
            Some(g) => Some(with_activity(progress, g.activity())),
            None => progress,
        };
        let settings = run::Settings {
            embedders,
            dry_run,
            to,
            progress,
            approve,
            invariants,
            executors,
        };
        let span = tracing::info_span!(
            "apply",
            store = %store.uri(),
            dry_run,
            version = tracing::field::Empty,
            error = tracing::field::Empty,
        );
        // boxed: an apply is a deep future; callers keep a small one
        let result = Box::pin(run::Run::new(store, settings).execute(&migrations))
            .instrument(span.clone())
            .await;
        match &result {
            Ok(r) => span.record("version", r.version_after),
            Err(e) => span.record("error", tracing::field::display(e)),
        };
        result
    }
}

pub(crate) use tags::ensure_tags;
pub use tags::migration_tag;

/// `progress`, also telling the lock what the apply is doing (`status` shows it).
fn with_activity(progress: Option<ProgressFn>, activity: crate::lock::Activity) -> ProgressFn {
    std::sync::Arc::new(move |p: &crate::ops::Progress| {
        let at = format!(
            "migration {:04} step {}/{} {}",
            p.migration,
            p.step + 1,
            p.steps,
            p.op
        );
        let what = match p.phase.as_str() {
            "sample" => format!(
                "{at}: embedding the compatibility sample, {}/{} rows",
                p.done, p.total
            ),
            "compat" => format!("{at}: comparing the spaces on the sample, fitting the adapter"),
            "backfill" | "catch_up" => {
                format!(
                    "{at}: {} {}/{} rows",
                    p.phase.replace('_', "-"),
                    p.done,
                    p.total
                )
            }
            "start" => format!("{at}: started"),
            "committed" => format!("{at}: committed"),
            "blocked" => format!("{at}: blocked"),
            _ => at,
        };
        if let Ok(mut a) = activity.lock() {
            *a = (Some(what), true);
        }
        if let Some(f) = &progress {
            f(p);
        }
    })
}
