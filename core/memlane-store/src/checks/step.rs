//! The checks of one migration step, on the staged (detached) version before it is
//! committed: the built-in and declared invariants, with what the step itself proved
//! (vectors checked as written, ids scanned once per apply) taken into account.

use lance::Dataset;
use memlane_core::invariant::{builtin_invariants, rows_accounted};
use memlane_core::migration::{CheckKind, InvariantSpec};
use memlane_core::report::InvariantResult;
use memlane_core::{Space, StoreState};

use crate::error::Result;
use crate::ops::Staged;

/// A staged step and what it is checked against.
pub(crate) struct StepCheck<'a> {
    /// The version the step would commit (detached).
    pub(crate) staged: &'a Dataset,
    /// The version it builds on.
    pub(crate) base: &'a Dataset,
    /// Whether the step rewrites `content` (then `content_unchanged` is not compared).
    pub(crate) touches_content: bool,
    /// State before the step.
    pub(crate) before: &'a StoreState,
    /// State the step commits.
    pub(crate) after: &'a StoreState,
    /// What staging the step did and proved.
    pub(crate) st: &'a Staged,
    /// Live rows of `base`.
    pub(crate) rows_before: u64,
    /// The migration's and the store's declared invariants.
    pub(crate) declared: &'a [InvariantSpec],
}

impl StepCheck<'_> {
    /// Evaluate the built-in and declared invariants (declared specs override the
    /// built-in of the same kind). `ids_checked` carries the uniqueness scan of an
    /// earlier step of the same apply (steps do not change ids).
    pub(crate) async fn run(
        &self,
        ids_checked: &mut Option<(u64, InvariantResult)>,
    ) -> Result<Vec<InvariantResult>> {
        let mut specs: Vec<InvariantSpec> = builtin_invariants()
            .into_iter()
            .filter(|b| {
                !self
                    .declared
                    .iter()
                    .any(|d| d.check == b.check && d.space.is_none() && d.name.is_none())
            })
            .collect();
        specs.extend(self.declared.iter().cloned());
        let rows_after = self.staged.count_rows(None).await? as u64;
        let mut out = Vec::new();
        for spec in &specs {
            match spec.check {
                CheckKind::RowsAccounted => out.push(rows_accounted(
                    spec,
                    self.rows_before,
                    self.st.rows_deleted,
                    0,
                    rows_after,
                )),
                CheckKind::IdsUnique => {
                    out.push(self.ids_unique(spec, rows_after, ids_checked).await?)
                }
                CheckKind::VectorsValid => {
                    for space in self.vector_spaces(spec) {
                        out.push(self.vectors_valid(spec, space, rows_after).await?);
                    }
                }
                CheckKind::ContentUnchanged if self.touches_content => {
                    out.push(super::skipped(
                        spec,
                        "the step rewrites `content`; not compared".to_owned(),
                    ));
                }
                _ => {
                    let subject = super::Subject {
                        ds: self.staged,
                        base: Some(self.base),
                        state: self.after,
                        deleted: self.st.rows_deleted,
                    };
                    out.extend(super::evaluate(spec, &subject).await?);
                }
            }
        }
        Ok(out)
    }

    /// Ids unique: scanned once per apply, carried forward while it passes.
    async fn ids_unique(
        &self,
        spec: &InvariantSpec,
        rows_after: u64,
        ids_checked: &mut Option<(u64, InvariantResult)>,
    ) -> Result<InvariantResult> {
        if let Some((v, r)) = ids_checked.as_ref().filter(|(_, r)| r.passed) {
            let mut r = r.clone();
            r.name = spec.label();
            r.total = rows_after;
            r.message = format!(
                "{rows_after} ids, unique and non-null (scanned {v} ids earlier in this apply; steps do not change ids)"
            );
            return Ok(r);
        }
        let r = super::records::ids_unique(self.staged, spec).await?;
        *ids_checked = Some((r.total, r.clone()));
        Ok(r)
    }

    /// The spaces a `vectors_valid` spec covers: the one it names, or what this step can
    /// have changed (written columns, a newly active space) that no declared spec names;
    /// untouched columns were checked when written.
    fn vector_spaces(&self, spec: &InvariantSpec) -> Vec<&Space> {
        let after = self.after;
        if let Some(name) = &spec.space {
            return after.space(name).into_iter().collect();
        }
        let newly_active = (after.active_space != self.before.active_space)
            .then(|| after.active())
            .flatten();
        let named = |s: &Space| {
            self.declared.iter().any(|d| {
                d.check == CheckKind::VectorsValid && d.space.as_deref() == Some(s.name.as_str())
            })
        };
        after
            .spaces
            .iter()
            .filter(|s| {
                self.st.written_vectors.contains(&s.column)
                    || newly_active.is_some_and(|a| a.name == s.name)
            })
            .filter(|s| !named(s))
            .collect()
    }

    /// The vectors of `space`: from a dry run's sample, from the checks made as they were
    /// written (no read-back when all were valid), or read back (for an online re-embed,
    /// the rows as of the version it settled at: later writes are its catch-up lag).
    async fn vectors_valid(
        &self,
        spec: &InvariantSpec,
        space: &Space,
        rows_after: u64,
    ) -> Result<InvariantResult> {
        let st = self.st;
        let name = || {
            if spec.space.is_some() {
                spec.label()
            } else {
                format!("vectors_valid[{}]", space.name)
            }
        };
        if st.sampled.contains(&space.column) {
            return Ok(InvariantResult::from_counts(
                format!("vectors_valid[{}]", space.name),
                CheckKind::VectorsValid,
                spec.severity,
                spec.mostly,
                0,
                0,
                vec![],
                format!(
                    "dry run: the embedder was checked on a sample; {} rows would be embedded",
                    st.rows_written
                ),
            ));
        }
        let required = self.after.active_space.as_deref() == Some(space.name.as_str());
        let clean = st
            .checked_as_written
            .iter()
            .find(|(c, _)| *c == space.column)
            .is_some_and(|(_, t)| t.invalid == 0 && (!required || t.nulls == 0));
        if clean {
            return Ok(InvariantResult::from_counts(
                name(),
                CheckKind::VectorsValid,
                spec.severity,
                spec.mostly,
                rows_after,
                0,
                vec![],
                format!(
                    "{rows_after} vectors of `{}` valid (checked as written)",
                    space.name
                ),
            ));
        }
        let settled = st
            .settled
            .filter(|_| st.written_vectors.contains(&space.column));
        let scope = settled.map(|v| {
            format!("_row_created_at_version <= {v} AND _row_last_updated_at_version <= {v}")
        });
        let mut r =
            super::vectors::audit(self.staged, space, required, spec, scope.as_deref()).await?;
        if let Some(v) = settled {
            r.message.push_str(&format!(
                " (rows as of version {v}; later writes are caught up after completion)"
            ));
        }
        Ok(r)
    }
}
