//! The review of each pending step that writes a new space from an old one (re-embed,
//! truncation): the compatibility check `apply` would make, on the sample's vectors.

use std::collections::BTreeMap;

use super::{Projection, ReviewOptions, Sample, StepReview, VectorColumn};
use crate::compat::{
    self, CompatMode, CompatOptions, CompatReport, Gate, Matrix, ModeThresholds, QuerySet, Verdict,
};
use crate::error::CompatError;
use crate::migration::{Migration, Step};
use crate::plan::{Plan, Snapshot};
use crate::report::CompatCheck;
use crate::space::{Space, normalize_flat, truncate_flat};

/// The compatibility check of `from` -> `to` on paired rows (`old`, `new` row-major, row
/// `i` of each is one record): the metrics, the declared mode verified against
/// `thresholds` (which also set the retention an adapter needs to be chosen), every
/// gate judged (a gate on an `adapter.*` metric fails when no adapter was chosen), the
/// worst verdict. `apply` and the preview both call this; neither the adapter
/// reference nor an approval is filled in here.
#[allow(clippy::too_many_arguments)]
pub fn check_pair(
    from: &Space,
    to: &Space,
    old: &[f32],
    new: &[f32],
    k: usize,
    (mode, thresholds): (Option<CompatMode>, &ModeThresholds),
    gates: &[Gate],
    queries: Option<QuerySet<'_>>,
) -> std::result::Result<(CompatCheck, Option<CompatReport>), CompatError> {
    let om = Matrix::new(old, from.dimension)?;
    let nm = Matrix::new(new, to.dimension)?;
    let n = om.rows();
    let k = k.min(n.saturating_sub(2)).max(1);
    let mut check = CompatCheck {
        from: from.name.clone(),
        to: to.name.clone(),
        sample: n,
        k,
        metrics: BTreeMap::new(),
        mode,
        mode_failure: None,
        suggested_mode: CompatMode::None,
        gates: vec![],
        verdict: Verdict::Pass,
        adapter_summary: String::new(),
        adapter: None,
        approval: None,
    };
    let needed = compat::min_sample_rows(k);
    if n < needed {
        check.adapter_summary = format!(
            "{n} rows with vectors in both spaces: too few to compare the spaces (need {needed})"
        );
        if mode.is_some() || !gates.is_empty() {
            check.verdict = Verdict::Block;
            check.mode_failure = Some(check.adapter_summary.clone());
        }
        return Ok((check, None));
    }
    let opts = CompatOptions {
        k,
        metric: from.metric,
        queries,
        min_retention: thresholds.min_retention,
        serve_min_retention: thresholds.serve_min_retention,
        ..CompatOptions::default()
    };
    let report = compat::compat(&om, &nm, &opts)?;
    check.metrics = report.metrics.clone();
    check.suggested_mode = report.suggested_mode;
    check.adapter_summary = report
        .adapter
        .as_ref()
        .map_or_else(|| "not fitted".to_owned(), |a| a.summary.clone());
    if let Some(mode) = mode
        && let Err(e) = compat::verify_mode(mode, &report, thresholds)
    {
        check.mode_failure = Some(e.to_string());
    }
    check.gates = compat::evaluate_with(gates, &check.metrics, &report.unreported())?;
    check.verdict = compat::overall(&check.gates);
    if check.mode_failure.is_some() {
        check.verdict = Verdict::Block;
    }
    Ok((check, Some(report)))
}

/// A space known to the snapshot or created by the plan.
fn find_space<'a>(plan: &'a Plan, snap: &'a Snapshot, name: &str) -> Option<&'a Space> {
    plan.spaces_after
        .iter()
        .find(|s| s.name == name)
        .or_else(|| snap.state.space(name))
}

/// Paired rows of two columns: (old row-major, new row-major), rows with both vectors.
fn paired(a: &VectorColumn, b: &VectorColumn, rows: usize) -> (Vec<f32>, Vec<f32>) {
    let (mut o, mut n) = (Vec::new(), Vec::new());
    for i in 0..rows {
        if let (Some(x), Some(y)) = (a.row(i), b.row(i)) {
            o.extend_from_slice(x);
            n.extend_from_slice(y);
        }
    }
    (o, n)
}

/// The 2-D projection of `m`, flat vectors of `sp` (none when it cannot be computed).
fn project(m: &[f32], sp: &Space) -> Option<Vec<f32>> {
    Matrix::new(m, sp.dimension)
        .ok()
        .and_then(|x| compat::project_2d(&x, sp.metric).ok())
}

/// The reviews of the re-embeds and truncations of `pending`, in order, and the vectors
/// of the truncated spaces (computed from the sample), by column.
pub(super) fn review_steps(
    p: &Plan,
    sample: &Sample,
    opts: &ReviewOptions,
    pending: &[&Migration],
) -> (Vec<StepReview>, BTreeMap<String, VectorColumn>) {
    let mut walk = Walk {
        plan: p,
        sample,
        opts,
        truncated: BTreeMap::new(),
        active: sample.snapshot.state.active_space.clone(),
        steps: Vec::new(),
    };
    for m in pending {
        for (i, s) in m.steps.iter().enumerate() {
            walk.step(m, i, &s.step);
        }
    }
    (walk.steps, walk.truncated)
}

/// The walk of [`super::review`] through the pending steps: the active space as the steps
/// leave it, the vectors of truncated spaces computed from the sample, and one
/// [`StepReview`] per re-embed or truncation.
struct Walk<'a> {
    /// The plan of the pending migrations.
    plan: &'a Plan,
    /// The sample reviewed on.
    sample: &'a Sample,
    /// Options of the review.
    opts: &'a ReviewOptions,
    /// Vectors of the spaces truncations create, by column.
    truncated: BTreeMap<String, VectorColumn>,
    /// Active space after the steps so far.
    active: Option<String>,
    /// Reviews of the steps so far.
    steps: Vec<StepReview>,
}

impl Walk<'_> {
    /// Review step `i` of `m` when it writes a new space from an old one, then follow
    /// the active space.
    fn step(&mut self, m: &Migration, i: usize, step: &Step) {
        match step {
            Step::Reembed {
                space,
                compare_to,
                mode,
                k,
                embedder,
                ..
            } => self.reembed(
                (m, i),
                space,
                compare_to.as_deref(),
                (*mode, step.mode_thresholds()),
                *k,
                embedder,
            ),
            Step::Truncate {
                from,
                space,
                dimension,
                ..
            } => self.truncate((m, i), from, space, *dimension),
            _ => {}
        }
        if let Some(space) = step.activates() {
            self.active = Some(space.to_owned());
        }
    }

    /// A re-embed into `space`: compared with `compare_to` (else the active space),
    /// unless that is the space itself.
    fn reembed(
        &mut self,
        (m, i): (&Migration, usize),
        space: &str,
        compare_to: Option<&str>,
        mode: (Option<CompatMode>, ModeThresholds),
        k: Option<usize>,
        embedder: &str,
    ) {
        let from = compare_to
            .map(str::to_owned)
            .or_else(|| self.active.clone());
        if let Some(from) = from.filter(|f| f != space) {
            let review = self.step_review(
                (m, i, "reembed"),
                (&from, space),
                k.unwrap_or(self.opts.k),
                (mode.0, &mode.1, &m.gates),
                Some(embedder),
            );
            self.steps.push(review);
        }
    }

    /// A truncation of `from` into `space`: its vectors follow from the old ones, so
    /// they are computed here (when the sample has the source's), then compared.
    fn truncate(&mut self, (m, i): (&Migration, usize), from: &str, space: &str, dimension: usize) {
        let snap = &self.sample.snapshot;
        if let (Some(src), Some(to)) = (
            find_space(self.plan, snap, from),
            find_space(self.plan, snap, space).cloned(),
        ) && let Some(col) = self
            .sample
            .vectors
            .get(&src.column)
            .or_else(|| self.truncated.get(&src.column))
            && (1..=col.dim).contains(&dimension)
        {
            let mut data = Vec::with_capacity(self.sample.ids.len() * dimension);
            truncate_flat(&col.data, col.dim, dimension, &mut data);
            normalize_flat(&mut data, dimension);
            let valid = col.valid.clone();
            self.truncated.insert(
                to.column.clone(),
                VectorColumn {
                    dim: dimension,
                    data,
                    valid,
                },
            );
        }
        let review = self.step_review(
            (m, i, "truncate"),
            (from, space),
            self.opts.k,
            (None, &ModeThresholds::default(), &[]),
            None,
        );
        self.steps.push(review);
    }

    /// The review of step `index` (`op`) of `m`, `from` -> `to`: the check `apply` would
    /// make on the sample's paired vectors, or a note on why there is none.
    fn step_review(
        &self,
        (m, index, op): (&Migration, usize, &str),
        (from, to): (&str, &str),
        k: usize,
        (mode, thresholds, gates): (Option<CompatMode>, &ModeThresholds, &[Gate]),
        embedder: Option<&str>,
    ) -> StepReview {
        let (p, sample, computed) = (self.plan, self.sample, &self.truncated);
        let projection = self.opts.projection;
        let mut out = StepReview {
            migration: m.id,
            file: m.file.clone(),
            step: index,
            op: op.to_owned(),
            from: from.to_owned(),
            to: to.to_owned(),
            check: None,
            report: None,
            note: None,
            projection: None,
        };
        let snap = &sample.snapshot;
        let (Some(a), Some(b)) = (find_space(p, snap, from), find_space(p, snap, to)) else {
            out.note = Some(format!(
                "space `{from}` or `{to}` is neither in the store nor declared by the plan"
            ));
            return out;
        };
        let col = |sp: &Space| {
            sample
                .vectors
                .get(&sp.column)
                .or_else(|| computed.get(&sp.column))
        };
        let Some(ca) = col(a) else {
            out.note = Some(format!(
                "the sample has no vectors of `{from}` (column `{}`); export it again from the store",
                a.column
            ));
            return out;
        };
        let Some(cb) = col(b) else {
            out.note = Some(match embedder {
                Some(e) => format!(
                    "the sample has no vectors of the new space `{to}`: export it with the new model, e.g. `memlane export-sample STORE FOLDER --embedder {e}=cmd:YOUR_EMBEDDER -o sample.arrow` (or `store.export_sample(..., embedders={{\"{e}\": fn}})` in Python)"
                ),
                None => format!("the sample has no vectors of `{to}`"),
            });
            return out;
        };
        if ca.dim != a.dimension || cb.dim != b.dimension {
            out.note = Some(format!(
                "the sample's vectors are {}-d and {}-d but `{from}` is {}-d and `{to}` {}-d",
                ca.dim, cb.dim, a.dimension, b.dimension
            ));
            return out;
        }
        let (old, new) = paired(ca, cb, sample.ids.len());
        match check_pair(a, b, &old, &new, k, (mode, thresholds), gates, None) {
            Ok((check, report)) => {
                if projection && report.is_some() {
                    out.projection = project(&old, a)
                        .zip(project(&new, b))
                        .map(|(old, new)| Projection { old, new });
                }
                out.check = Some(check);
                out.report = report;
            }
            Err(e) => out.note = Some(format!("the compatibility check failed: {e}")),
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compat::testdata;

    fn gates(src: &str) -> Vec<Gate> {
        let doc: toml::Value = toml::from_str(src).unwrap();
        compat::parse_gates(&doc["gates"]).unwrap()
    }

    #[test]
    fn a_gate_on_the_adapter_blocks_when_none_was_chosen() {
        let (old, new) = (
            testdata::latent(200, 12, 12, 0.0, 4),
            testdata::latent(200, 8, 8, 0.0, 5),
        );
        let g = gates("[gates]\n\"adapter.retention\" = { block_below = 0.5 }\n");
        let (check, _) = check_pair(
            &Space::new("old", 12),
            &Space::new("new", 8),
            &old,
            &new,
            10,
            (None, &ModeThresholds::default()),
            &g,
            None,
        )
        .unwrap();
        assert_eq!(check.verdict, Verdict::Block, "{check}");
        assert_eq!(check.gates[0].value, None);
        assert!(
            check.gates[0].message.contains("no adapter was chosen"),
            "{check}"
        );
    }

    #[test]
    fn an_adapter_between_the_thresholds_serves_unless_mode_adapter_is_claimed() {
        let (old, new) = testdata::cross_family(500, (48, 72, 48), 1.2, 11);
        let (from, to) = (Space::new("old", 48), Space::new("new", 72));
        let run = |mode, t: &ModeThresholds| {
            check_pair(&from, &to, &old, &new, 10, (mode, t), &[], None).unwrap()
        };
        let defaults = ModeThresholds::default();
        let (check, report) = run(None, &defaults);
        assert_eq!(check.verdict, Verdict::Pass, "{check}");
        let fit = report.unwrap().adapter.unwrap();
        let c = fit
            .chosen_candidate()
            .expect("an adapter to serve the backfill");
        assert!((0.7..0.9).contains(&c.retention), "{check}");
        let (check, _) = run(Some(CompatMode::Adapter), &defaults);
        assert_eq!(check.verdict, Verdict::Block);
        let why = check.mode_failure.unwrap_or_default();
        assert!(why.contains("may serve during the backfill"), "{why}");
        let lower = ModeThresholds {
            min_retention: 0.75,
            ..defaults
        };
        let (check, _) = run(Some(CompatMode::Adapter), &lower);
        assert_eq!(check.verdict, Verdict::Pass, "{check}");
    }
}
