//! The checks of one migration step, on the staged (detached) version before it is
//! committed: the built-in and declared invariants, with what the step itself proved
//! (vectors checked as written, ids scanned once per apply) taken into account.

use lance::Dataset;
use memlane_core::StoreState;
use memlane_core::migration::{CheckKind, InvariantSpec};
use memlane_core::report::InvariantResult;

use crate::error::Result;
use memlane_core::invariant::{builtin_invariants, row_count, rows_accounted};
use std::sync::Arc;

/// Evaluate the built-in and declared invariants on the staged version.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn check(
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
                        let r = super::records::ids_unique(staged, spec).await?;
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
                        super::vectors::audit(staged, space, required, spec, scope.as_deref())
                            .await?;
                    if let Some(v) = st.settled.filter(|_| scope.is_some()) {
                        r.message.push_str(&format!(
                            " (rows as of version {v}; later writes are caught up after completion)"
                        ));
                    }
                    out.push(r);
                }
            }
            CheckKind::Expression => out.push(super::records::expression(staged, spec).await?),
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
                    let subject = super::Subject {
                        ds: staged,
                        base: Some(base),
                        state: after,
                        deleted: st.rows_deleted,
                    };
                    out.extend(super::evaluate(spec, &subject).await?);
                }
            }
        }
    }
    Ok(out)
}
