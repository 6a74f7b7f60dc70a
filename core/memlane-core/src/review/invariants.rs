//! The invariants a sample can be checked for on rows alone: ids, every space's
//! vectors, duplicates and field rules.

use std::collections::BTreeMap;

use super::{Sample, VectorColumn};
use crate::audit::{DuplicateAudit, FieldAudit, Scalar};
use crate::invariant::{IdAudit, VectorAudit};
use crate::migration::{CheckKind, InvariantSpec};
use crate::plan::Plan;
use crate::report::InvariantResult;
use crate::space::Space;

/// The invariants of `declared` (and the built-in ones) that can run on the rows of
/// `sample`, with the vectors of truncated spaces from `computed`.
pub(super) fn sample_invariants(
    sample: &Sample,
    p: &Plan,
    computed: &BTreeMap<String, VectorColumn>,
    declared: &[&InvariantSpec],
) -> Vec<InvariantResult> {
    let mut out = Vec::new();
    let mut ids = IdAudit::default();
    for id in &sample.ids {
        ids.feed(Some(id));
    }
    let builtin_ids = InvariantSpec::builtin(CheckKind::IdsUnique);
    out.push(
        ids.finish(
            declared
                .iter()
                .find(|d| d.check == CheckKind::IdsUnique)
                .copied()
                .unwrap_or(&builtin_ids),
        ),
    );
    let snap = &sample.snapshot;
    let mut spaces: Vec<&Space> = p.spaces_after.iter().collect();
    for s in &snap.state.spaces {
        if !spaces.iter().any(|x| x.name == s.name) {
            spaces.push(s);
        }
    }
    for sp in spaces {
        let Some(col) = sample
            .vectors
            .get(&sp.column)
            .or_else(|| computed.get(&sp.column))
        else {
            continue;
        };
        let mine: Vec<&InvariantSpec> = declared
            .iter()
            .copied()
            .filter(|d| d.space.as_deref() == Some(sp.name.as_str()))
            .collect();
        let spec = crate::migration::vectors_spec(mine.iter().copied(), &sp.name);
        let mut a = VectorAudit::new(sp.clone()).with_norm_range(spec.min_norm, spec.max_norm);
        for (i, id) in sample.ids.iter().enumerate() {
            a.feed(id, col.row(i), false);
        }
        out.push(a.finish(&spec));
        for d in mine.iter().filter(|d| d.check == CheckKind::Duplicates) {
            let mut a = DuplicateAudit::default();
            for (i, id) in sample.ids.iter().enumerate() {
                if let Some(v) = col.row(i) {
                    a.feed(id, v);
                }
            }
            out.push(a.finish(d, &sp.name));
        }
    }
    for d in declared.iter().filter(|d| d.check == CheckKind::Field) {
        let Some(values) = d.field.as_ref().and_then(|f| sample.fields.get(f)) else {
            continue;
        };
        let mut a = FieldAudit::new(d);
        for (id, v) in sample.ids.iter().zip(values) {
            a.feed(id, Scalar::from_json(v));
        }
        out.push(a.finish());
    }
    out
}
