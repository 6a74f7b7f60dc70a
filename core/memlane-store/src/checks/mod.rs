//! The checks: every invariant evaluator, over Lance versions, and the one fused scan
//! of `validate`. [`evaluate`] runs any one spec; `apply` ([`step`]) and `validate`
//! both call it for what they do not fuse or know already.
//!
//! The accumulators are in `memlane_core::audit` and `memlane_core::invariant`; these
//! modules read the columns they need.

pub(crate) mod compare;
pub(crate) mod context;
pub(crate) mod fused;
pub(crate) mod index;
pub(crate) mod records;
pub(crate) mod step;
pub(crate) mod vectors;

use lance::Dataset;
use memlane_core::migration::{CheckKind, InvariantSpec};
use memlane_core::report::InvariantResult;
use memlane_core::{Space, StoreState};

use crate::error::{Result, StoreError};

use compare::{content_unchanged, ids_preserved};
use records::{duplicates, field, lifecycle, references};

/// The fields the lifecycle rules read (all needed).
pub(crate) const LIFECYCLE_FIELDS: [&str; 4] = ["status", "supersedes", "created_at", "updated_at"];

/// Whether `ds` has a field the reference check reads.
pub(crate) fn has_reference_fields(ds: &Dataset) -> bool {
    has(ds, "supersedes") || has(ds, "relationships")
}

/// Whether `ds` has every field the lifecycle rules read.
pub(crate) fn has_lifecycle_fields(ds: &Dataset) -> bool {
    LIFECYCLE_FIELDS.iter().all(|c| has(ds, c))
}

/// Lance's system column: the version a row was first written at.
pub(crate) const ROW_CREATED_AT_VERSION: &str = "_row_created_at_version";

pub(crate) use crate::engine::scan::has;

pub(crate) fn skipped(spec: &InvariantSpec, why: String) -> InvariantResult {
    InvariantResult::from_counts(
        spec.label(),
        spec.check,
        spec.severity,
        1.0,
        0,
        0,
        vec![],
        why,
    )
}

/// The space a `duplicates` spec names (or the active one).
pub(crate) fn spec_space<'a>(spec: &InvariantSpec, state: &'a StoreState) -> Option<&'a Space> {
    match &spec.space {
        Some(s) => state.space(s),
        None => state.active(),
    }
}

/// The specs `memlane validate` runs: its built-ins (ids unique, references, lifecycle,
/// and — as warnings — ids preserved and content unchanged), replaced by a declared spec
/// of the same kind, then the declared ones.
pub(crate) fn validation_specs(declared: &[InvariantSpec]) -> Vec<InvariantSpec> {
    let mut specs: Vec<InvariantSpec> = [
        CheckKind::IdsUnique,
        CheckKind::References,
        CheckKind::Lifecycle,
        CheckKind::IdsPreserved,
        CheckKind::ContentUnchanged,
    ]
    .into_iter()
    .map(|k| {
        let mut s = InvariantSpec::builtin(k);
        // between two versions ids and content may change by design (writers, deletes):
        // reported, and blocking only when a file declares them
        if matches!(k, CheckKind::IdsPreserved | CheckKind::ContentUnchanged) {
            s.severity = memlane_core::Severity::Warn;
        }
        s
    })
    .filter(|b| {
        !declared.iter().any(|d| {
            d.check == b.check && d.name.is_none() && d.space.is_none() && d.field.is_none()
        })
    })
    .collect();
    specs.extend(declared.iter().cloned());
    specs
}

/// What one spec is evaluated on: a version, the version it is compared with (for the
/// checks that compare), the state it carries and the rows the step deleted.
pub(crate) struct Subject<'a> {
    /// The version checked.
    pub(crate) ds: &'a Dataset,
    /// The earlier version `ids_preserved` / `content_unchanged` compare with.
    pub(crate) base: Option<&'a Dataset>,
    /// The state `ds` carries (spaces, the active one).
    pub(crate) state: &'a StoreState,
    /// Rows the step between `base` and `ds` deleted on purpose.
    pub(crate) deleted: u64,
}

/// Evaluate one spec on `subject`, the plain way (no fused scan, nothing known from how
/// the version was written): the one evaluator `apply` and `validate` share.
pub(crate) async fn evaluate(
    spec: &InvariantSpec,
    subject: &Subject<'_>,
) -> Result<Vec<InvariantResult>> {
    let Subject {
        ds,
        base,
        state,
        deleted,
    } = *subject;
    let one = |r: InvariantResult| Ok(vec![r]);
    let earlier = || skipped(spec, "no earlier version to compare with".into());
    match spec.check {
        CheckKind::RowCount => one(memlane_core::invariant::row_count(
            spec,
            ds.count_rows(None).await? as u64,
        )),
        CheckKind::IdsUnique => one(records::ids_unique(ds, spec).await?),
        CheckKind::Expression => one(records::expression(ds, spec).await?),
        CheckKind::VectorsValid => match spec_space(spec, state) {
            Some(sp) if has(ds, &sp.column) => {
                let required = state.active_space.as_deref() == Some(sp.name.as_str());
                one(vectors::audit(ds, sp, required, spec, None).await?)
            }
            _ => Ok(vec![]),
        },
        CheckKind::IdsPreserved => match base {
            Some(b) => one(ids_preserved(spec, b, ds, deleted).await?),
            None => one(earlier()),
        },
        CheckKind::ContentUnchanged => match base {
            Some(b) => one(content_unchanged(spec, b, ds).await?),
            None => one(earlier()),
        },
        CheckKind::Field => one(field(spec, ds).await?),
        CheckKind::References => one(references(spec, ds).await?),
        CheckKind::Lifecycle => one(lifecycle(spec, ds).await?),
        CheckKind::Duplicates => match spec_space(spec, state) {
            Some(sp) if has(ds, &sp.column) => one(duplicates(spec, ds, sp).await?),
            _ => Err(StoreError::Input(format!(
                "invariant `{}`: no space to check for duplicates; name one with `space = \"...\"`",
                spec.label()
            ))),
        },
        CheckKind::IndexRecall => match spec_space(spec, state) {
            Some(sp) if has(ds, &sp.column) => one(index::recall(spec, ds, sp).await?),
            _ => Err(StoreError::Input(format!(
                "invariant `{}`: no indexed space to check; name one with `space = \"...\"`",
                spec.label()
            ))),
        },
        CheckKind::RowsAccounted => Ok(vec![]),
    }
}
