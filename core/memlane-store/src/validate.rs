//! `memlane validate`: every built-in check plus the declared ones on the current
//! version, against an earlier one, with the drift of every space; and the kept
//! validation reports (a metrics repository over versions). The evaluators and the
//! fused scan are in [`crate::checks`]; this module schedules them.

use lance::Dataset;
use memlane_core::migration::{CheckKind, InvariantSpec};
use memlane_core::report::InvariantResult;
use memlane_core::schema::CONTENT;
use memlane_core::{Space, StoreState};
use serde::{Deserialize, Serialize};
use tokio::task::JoinHandle;

use crate::checks::compare::scan_before;
use crate::checks::context::{SpaceDrift, drifts};
use crate::checks::fused::{AfterRows, CurrentPlan, CurrentResults, scan_current};
use crate::checks::{has, has_lifecycle_fields, has_reference_fields};
use crate::error::{Result, StoreError};
use crate::store::Store;

/// What `memlane validate` found on one version.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ValidateReport {
    /// Version validated.
    pub version: u64,
    /// The version `ids_preserved` / `content_unchanged` compared against (if any).
    pub against: Option<u64>,
    /// Live rows.
    pub rows: u64,
    /// Every check, failures and warnings included (never stops at the first).
    pub results: Vec<InvariantResult>,
    /// Per space present in both versions: how its vectors' distribution moved.
    #[serde(default)]
    pub drift: Vec<SpaceDrift>,
}

impl ValidateReport {
    /// Whether no `fail` check failed.
    pub fn ok(&self) -> bool {
        !self.results.iter().any(InvariantResult::blocks)
    }
}

impl std::fmt::Display for ValidateReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "validate version {} ({} rows{}): {}",
            self.version,
            self.rows,
            self.against
                .map_or(String::new(), |a| format!(", against version {a}")),
            if self.ok() { "OK" } else { "FAILED" }
        )?;
        for r in &self.results {
            writeln!(f, "  {r}")?;
        }
        Ok(())
    }
}

/// One check's outcome at one version, from a step report or a `memlane validate` run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckMetric {
    /// Lance version the check describes.
    pub version: u64,
    /// `apply` (a step's invariants) or `validate`.
    pub source: String,
    /// Check name.
    pub check: String,
    /// Rows looked at.
    pub total: u64,
    /// Rows that failed.
    pub failed: u64,
    /// Whether it held.
    pub passed: bool,
    /// Its severity.
    pub severity: memlane_core::Severity,
}

fn points(version: u64, source: &str, results: &[InvariantResult]) -> Vec<CheckMetric> {
    results
        .iter()
        .map(|r| CheckMetric {
            version,
            source: source.to_owned(),
            check: r.name.clone(),
            total: r.total,
            failed: r.failed,
            passed: r.passed,
            severity: r.severity,
        })
        .collect()
}

impl Store {
    /// Keep a validation report with the version it describes (`_memlane/validate/`,
    /// derived data: `validate` recomputes it), for [`Store::validate_history`].
    pub async fn record_validation(&self, r: &ValidateReport) -> Result<()> {
        let text = serde_json::to_vec_pretty(r).map_err(|e| StoreError::Internal(e.to_string()))?;
        let name = format!("{}/v{:010}.json", crate::sidecar::VALIDATE, r.version);
        self.side_files().put(&name, text).await
    }

    /// Every check over versions: the invariants recorded in each step's commit and
    /// every kept `memlane validate` report, oldest first (a metrics repository).
    pub async fn validate_history(&self) -> Result<Vec<CheckMetric>> {
        let mut out = Vec::new();
        for h in self.history().await? {
            if let Some(r) = h.entry.as_ref().and_then(|e| e.report.as_ref()) {
                out.extend(points(h.version, "apply", &r.invariants));
            }
        }
        let side = self.side_files();
        for name in side
            .list(crate::sidecar::VALIDATE)
            .await
            .unwrap_or_default()
        {
            if !name.ends_with(".json") {
                continue;
            }
            let Ok(Some(f)) = side.get(&name).await else {
                continue;
            };
            if let Ok(r) = serde_json::from_slice::<ValidateReport>(&f.bytes) {
                out.extend(points(r.version, "validate", &r.results));
            }
        }
        out.sort_by(|a, b| a.version.cmp(&b.version).then(a.source.cmp(&b.source)));
        Ok(out)
    }

    /// Run every built-in check (ids unique, vectors of every space valid, references,
    /// lifecycle, ids preserved and content unchanged against `against` — default the
    /// version before the current one) and the `declared` ones on the current version.
    /// Lists every failure; nothing stops at the first.
    pub async fn validate(
        &self,
        declared: &[InvariantSpec],
        against: Option<u64>,
    ) -> Result<ValidateReport> {
        let ds = self.dataset().clone();
        let state = self.state();
        let version = self.version();
        let against = against.or_else(|| version.checked_sub(1).filter(|v| *v >= 1));
        let base = match against {
            Some(v) => Some(ds.checkout_version(v).await?),
            None => None,
        };
        let specs = crate::checks::validation_specs(declared);
        let fused = Fusion::new(&specs, &ds, base.as_ref());
        // drift samples a few hundred rows of each version: beside the scans
        let drift_task = base
            .clone()
            .map(|b| spawn_drifts(b, ds.clone(), state.clone()));
        // two scans on two tasks: the base version's ids and content, and one scan of the
        // current version for every built-in check of it and the comparison's other side
        let (tx, before) = fused.spawn_comparison(base.as_ref());
        let current = {
            let (ds, plan) = (
                ds.clone(),
                fused.current_plan(&specs, &ds, base.as_ref(), state, declared),
            );
            tokio::spawn(async move { scan_current(&ds, &plan, tx).await })
        };
        let slots = fused.slots(&specs, &ds, base.as_ref(), state);
        let mut cur = join(current).await?;
        let versions = match before {
            Some(task) => Some(join(task).await?),
            None => None,
        };
        let mut results = Vec::new();
        for slot in slots {
            results.extend(slot.result(&specs, &mut cur, versions.as_ref()).await?);
        }
        results.append(&mut cur.vectors);
        for sp in state.spaces.iter().filter(|s| s.index.is_some()) {
            results.push(crate::checks::index::coverage(&ds, sp).await?);
        }
        let mut drift = Vec::new();
        if let (Some(task), Some(v)) = (drift_task, against) {
            drift = join(task).await?;
            results.extend(drift.iter().map(|d| drift_result(d, v)));
        }
        Ok(ValidateReport {
            version,
            against,
            rows: ds.count_rows(None).await? as u64,
            results,
            drift,
        })
    }
}

/// A validation task that panicked or was cancelled: an internal error.
async fn join<T>(task: JoinHandle<Result<T>>) -> Result<T> {
    task.await
        .map_err(|e| StoreError::Internal(format!("a validation task failed: {e}")))?
}

/// The drift of every space between `base` and `ds`, on a task of its own.
fn spawn_drifts(
    base: Dataset,
    ds: std::sync::Arc<Dataset>,
    state: StoreState,
) -> JoinHandle<Result<Vec<SpaceDrift>>> {
    tokio::spawn(async move {
        let base_state = crate::store::read_state(&base).await?.unwrap_or_default();
        drifts(&base, &base_state, &ds, &state).await
    })
}

/// The drift of one space as a (warning) check result.
fn drift_result(d: &SpaceDrift, against: u64) -> InvariantResult {
    let moved = d.drift.moved && !d.identity_changed;
    let msg = format!(
        "vectors of `{}` vs version {against}: MMD² {:.4} (p = {:.3}), mean direction cosine {:.3}, norm mean {:.3} -> {:.3}{}",
        d.space,
        d.drift.mmd2,
        d.drift.p_value,
        d.drift.mean_cosine,
        d.drift.before.norm_mean,
        d.drift.after.norm_mean,
        if moved {
            "; the distribution moved while the space's identity did not: was its model changed silently? compare with `memlane compat`, or declare a new space"
        } else {
            ""
        }
    );
    InvariantResult::from_counts(
        format!("drift[{}]", d.space),
        CheckKind::VectorsValid,
        memlane_core::Severity::Warn,
        1.0,
        1,
        u64::from(moved),
        vec![],
        msg,
    )
}

/// Which specs `validate` fuses into its scans: the first of each built-in kind the
/// fused scan evaluates, and whether the two versions are compared.
struct Fusion {
    first_ids: Option<usize>,
    first_text: Option<usize>,
    unique: Option<usize>,
    refs: Option<usize>,
    life: Option<usize>,
    with_content: bool,
    compare: bool,
}

/// Where one spec's results come from, in the order of the specs.
enum Slot {
    /// Evaluated on a task of its own.
    Task(JoinHandle<Result<Vec<InvariantResult>>>),
    /// `ids_preserved` of the version comparison (spec index).
    Ids(usize),
    /// `content_unchanged` of the version comparison (spec index).
    Text(usize),
    /// `ids_unique` of the fused scan.
    Unique,
    /// `references` of the fused scan.
    References,
    /// `lifecycle` of the fused scan.
    Lifecycle,
}

impl Fusion {
    fn new(specs: &[InvariantSpec], ds: &Dataset, base: Option<&Dataset>) -> Self {
        let first = |k: CheckKind| specs.iter().position(|s| s.check == k);
        let (first_ids, first_text) = (
            first(CheckKind::IdsPreserved),
            first(CheckKind::ContentUnchanged),
        );
        let with_content =
            first_text.is_some() && has(ds, CONTENT) && base.is_some_and(|b| has(b, CONTENT));
        Fusion {
            first_ids,
            first_text,
            unique: first(CheckKind::IdsUnique),
            refs: first(CheckKind::References).filter(|_| has_reference_fields(ds)),
            life: first(CheckKind::Lifecycle).filter(|_| has_lifecycle_fields(ds)),
            with_content,
            compare: base.is_some() && (first_ids.is_some() || with_content),
        }
    }

    /// The comparison: the base version's scan, then the current rows as they come.
    #[allow(clippy::type_complexity)]
    fn spawn_comparison(
        &self,
        base: Option<&Dataset>,
    ) -> (
        Option<tokio::sync::mpsc::UnboundedSender<AfterRows>>,
        Option<JoinHandle<Result<memlane_core::audit::VersionAudit>>>,
    ) {
        let Some(b) = base.filter(|_| self.compare).cloned() else {
            return (None, None);
        };
        let with_content = self.with_content;
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<AfterRows>();
        let task = tokio::spawn(async move {
            let mut audit = scan_before(&b, with_content).await?;
            while let Some(rows) = rx.recv().await {
                rows.feed(&mut audit);
            }
            Ok::<_, StoreError>(audit)
        });
        (Some(tx), Some(task))
    }

    /// What the one scan of the current version evaluates: the fused built-ins and the
    /// vectors of every space (declared specs for a space replace its built-in).
    fn current_plan(
        &self,
        specs: &[InvariantSpec],
        ds: &Dataset,
        base: Option<&Dataset>,
        state: &StoreState,
        declared: &[InvariantSpec],
    ) -> CurrentPlan {
        let spec = |i: Option<usize>| i.map(|i| specs[i].clone());
        let vectors: Vec<(Space, bool, InvariantSpec)> = state
            .spaces
            .iter()
            .filter(|sp| has(ds, &sp.column))
            .map(|sp| {
                let spec = memlane_core::migration::vectors_spec(declared, &sp.name);
                let required = state.active_space.as_deref() == Some(sp.name.as_str());
                (sp.clone(), required, spec)
            })
            .collect();
        CurrentPlan {
            ids: spec(self.unique),
            refs: spec(self.refs),
            life: spec(self.life),
            vectors,
            after: base
                .filter(|_| self.compare)
                .map(|b| (b.version().version, self.with_content)),
        }
    }

    /// One slot per spec that is not a vector check: the fused ones, and a task for each
    /// of the others (declared ones, and repeats of a kind).
    fn slots(
        &self,
        specs: &[InvariantSpec],
        ds: &std::sync::Arc<Dataset>,
        base: Option<&Dataset>,
        state: &StoreState,
    ) -> Vec<Slot> {
        let mut slots = Vec::new();
        for (i, spec) in specs.iter().enumerate() {
            let fused = match i {
                _ if self.compare && Some(i) == self.first_ids => Some(Slot::Ids(i)),
                _ if self.compare && self.with_content && Some(i) == self.first_text => {
                    Some(Slot::Text(i))
                }
                _ if Some(i) == self.unique => Some(Slot::Unique),
                _ if Some(i) == self.refs => Some(Slot::References),
                _ if Some(i) == self.life => Some(Slot::Lifecycle),
                _ => None,
            };
            if let Some(slot) = fused {
                slots.push(slot);
            } else if !matches!(
                spec.check,
                CheckKind::VectorsValid | CheckKind::RowsAccounted
            ) {
                let (spec, ds, base, state) =
                    (spec.clone(), ds.clone(), base.cloned(), state.clone());
                slots.push(Slot::Task(tokio::spawn(async move {
                    let subject = crate::checks::Subject {
                        ds: &ds,
                        base: base.as_ref(),
                        state: &state,
                        deleted: 0,
                    };
                    crate::checks::evaluate(&spec, &subject).await
                })));
            }
        }
        slots
    }
}

impl Slot {
    /// The results of this slot, from its task, the comparison or the fused scan.
    async fn result(
        self,
        specs: &[InvariantSpec],
        cur: &mut CurrentResults,
        versions: Option<&memlane_core::audit::VersionAudit>,
    ) -> Result<Vec<InvariantResult>> {
        Ok(match self {
            Slot::Task(t) => join(t).await?,
            Slot::Ids(i) => versions
                .map(|a| a.ids_result(&specs[i], 0))
                .into_iter()
                .collect(),
            Slot::Text(i) => versions
                .map(|a| a.content_result(&specs[i]))
                .into_iter()
                .collect(),
            Slot::Unique => cur.ids.take().into_iter().collect(),
            Slot::References => cur.refs.take().into_iter().collect(),
            Slot::Lifecycle => cur.life.take().into_iter().collect(),
        })
    }
}

impl crate::verdict::Verdict for ValidateReport {
    fn ok(&self) -> bool {
        ValidateReport::ok(self)
    }
}
