//! The review of pending migrations on a sample of a store: what the browser preview
//! shows and `memlane review` prints, computed by the same code in both.
//!
//! A [`Sample`] is what `memlane export-sample` writes: some rows' ids, metadata and
//! vectors (of the spaces the store has, plus the new spaces of pending re-embeds when
//! an embedder was given), and the store's [`Snapshot`]. [`review`] plans the pending
//! migrations against the snapshot (lint included), runs the compatibility check of each
//! re-embed and truncation on the sample's paired vectors with the migration's declared
//! mode and gates (the same [`check_pair`] `apply` runs), checks the sample's invariants,
//! and projects both spaces to 2-D for a picture.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::audit::{DuplicateAudit, FieldAudit, Scalar};
use crate::compat::{
    self, CompatMode, CompatOptions, CompatReport, Gate, Matrix, ModeThresholds, QuerySet, Verdict,
};
use crate::error::{CompatError, Result};
use crate::invariant::{IdAudit, VectorAudit};
use crate::migration::{CheckKind, InvariantSpec, Migration, Step};
use crate::plan::{Plan, Snapshot, plan};
use crate::report::{CompatCheck, InvariantResult};
use crate::space::{Space, normalize_flat, truncate_flat};

/// One vector column of a sample.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct VectorColumn {
    /// Dimension.
    pub dim: usize,
    /// Row-major values, `rows * dim` (anything where `valid` is false).
    pub data: Vec<f32>,
    /// Per row: whether it has a vector (empty: every row has one).
    #[serde(default)]
    pub valid: Vec<bool>,
}

impl VectorColumn {
    /// Whether row `i` has a vector.
    pub fn has(&self, i: usize) -> bool {
        self.valid.get(i).copied().unwrap_or(self.valid.is_empty())
    }

    /// Row `i`'s vector, if it has one.
    pub fn row(&self, i: usize) -> Option<&[f32]> {
        let start = i.checked_mul(self.dim)?;
        let end = start.checked_add(self.dim)?;
        self.has(i).then(|| self.data.get(start..end)).flatten()
    }
}

/// Rows of a store with the snapshot they were taken from.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Sample {
    /// The store's snapshot (spaces, schema, applied migrations, rows).
    pub snapshot: Snapshot,
    /// Record ids, in row order.
    pub ids: Vec<String>,
    /// Vector columns by column name (`vec_<space>` unless the space says otherwise).
    #[serde(default)]
    pub vectors: BTreeMap<String, VectorColumn>,
    /// Metadata columns by name: one JSON value per row (null where missing).
    #[serde(default)]
    pub fields: BTreeMap<String, Vec<serde_json::Value>>,
}

/// Options of [`review`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ReviewOptions {
    /// Neighbours per row when a step does not say (default 10).
    pub k: usize,
    /// Compute the 2-D projections of both spaces (default true).
    pub projection: bool,
    /// The store-level invariants (`invariants.toml`), checked on the sample too.
    pub invariants: Vec<InvariantSpec>,
}

impl Default for ReviewOptions {
    fn default() -> Self {
        ReviewOptions {
            k: 10,
            projection: true,
            invariants: vec![],
        }
    }
}

/// Both spaces of a step projected to 2-D (`[x0, y0, x1, y1, ...]`, row for row).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Projection {
    /// The old space.
    pub old: Vec<f32>,
    /// The new space.
    pub new: Vec<f32>,
}

/// The compatibility review of one step that writes a new space from an old one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepReview {
    /// Migration id.
    pub migration: u32,
    /// Migration file.
    pub file: String,
    /// 0-based step index.
    pub step: usize,
    /// `reembed` or `truncate`.
    pub op: String,
    /// The space compared against.
    pub from: String,
    /// The space written.
    pub to: String,
    /// The check `apply` would make (absent when the sample cannot support one).
    pub check: Option<CompatCheck>,
    /// Every metric behind the check, with per-row values for plots.
    pub report: Option<CompatReport>,
    /// Why there is no check, or what to know about it.
    pub note: Option<String>,
    /// Both spaces in 2-D.
    pub projection: Option<Projection>,
}

/// The review of a folder's pending migrations on a sample.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Review {
    /// What `apply` would do, with lint findings.
    pub plan: Plan,
    /// Rows in the sample.
    pub sample_rows: usize,
    /// Rows in the store the sample came from.
    pub store_rows: u64,
    /// One entry per re-embed or truncation.
    pub steps: Vec<StepReview>,
    /// Invariants on the sample: ids, every space's vectors, and the declared checks that
    /// can run on rows alone (vectors, duplicates, fields).
    pub invariants: Vec<InvariantResult>,
    /// Worst of everything: `block` on a lint error, a blocking check or a failed `fail`
    /// invariant; `review` when a gate asks for review; else `pass`.
    pub verdict: Verdict,
    /// Why the verdict is what it is, one line per reason.
    pub reasons: Vec<String>,
}

/// The compatibility check of `from` -> `to` on paired rows (`old`, `new` row-major, row
/// `i` of each is one record): the metrics, the declared mode verified, every gate
/// judged, the worst verdict. `apply` and the preview both call this; neither the
/// adapter reference nor an approval is filled in here.
#[allow(clippy::too_many_arguments)]
pub fn check_pair(
    from: &Space,
    to: &Space,
    old: &[f32],
    new: &[f32],
    k: usize,
    mode: Option<CompatMode>,
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
        && let Err(e) = compat::verify_mode(mode, &report, &ModeThresholds::default())
    {
        check.mode_failure = Some(e.to_string());
    }
    check.gates = compat::evaluate(gates, &check.metrics)?;
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

fn project(m: &[f32], sp: &Space) -> Option<Vec<f32>> {
    Matrix::new(m, sp.dimension)
        .ok()
        .and_then(|x| compat::project_2d(&x, sp.metric).ok())
}

/// Review `files` (every migration of the folder, applied ones included, as `apply`
/// reads them) against `sample`.
pub fn review(files: &[Migration], sample: &Sample, opts: &ReviewOptions) -> Result<Review> {
    let snap = &sample.snapshot;
    let p = plan(snap, files)?;
    let rows = sample.ids.len();
    for (col, v) in &sample.vectors {
        // checked: `dim` comes from a file, and a huge one must be a shape error, not an
        // overflow
        let fits = v.dim > 0 && rows.checked_mul(v.dim) == Some(v.data.len());
        if !fits || !(v.valid.is_empty() || v.valid.len() == rows) {
            return Err(CompatError::Shape {
                what: format!("sample column `{col}`"),
                message: format!(
                    "{} values and {} validity flags for {rows} rows of dimension {}; export the sample again with `memlane export-sample`",
                    v.data.len(),
                    v.valid.len(),
                    v.dim
                ),
            }
            .into());
        }
    }
    let pending: Vec<&Migration> = p
        .migrations
        .iter()
        .filter_map(|pm| files.iter().find(|m| m.id == pm.id))
        .collect();
    let mut steps = Vec::new();
    let mut truncated: BTreeMap<String, VectorColumn> = BTreeMap::new();
    let mut active = snap.state.active_space.clone();
    for m in &pending {
        for (i, s) in m.steps.iter().enumerate() {
            match &s.step {
                Step::Reembed {
                    space,
                    compare_to,
                    mode,
                    k,
                    activate,
                    embedder,
                    ..
                } => {
                    let from = compare_to.clone().or_else(|| active.clone());
                    if let Some(from) = from.filter(|f| f != space) {
                        steps.push(step_review(
                            &p,
                            sample,
                            &truncated,
                            (m, i, "reembed"),
                            (&from, space),
                            k.unwrap_or(opts.k),
                            (*mode, &m.gates),
                            Some(embedder),
                            opts.projection,
                        ));
                    }
                    if *activate {
                        active = Some(space.clone());
                    }
                }
                Step::Truncate {
                    from,
                    space,
                    dimension,
                    activate,
                } => {
                    // the new vectors follow from the old ones: compute them here
                    if let (Some(src), Some(to)) = (
                        find_space(&p, snap, from),
                        find_space(&p, snap, space).cloned(),
                    ) && let Some(col) = sample
                        .vectors
                        .get(&src.column)
                        .or_else(|| truncated.get(&src.column))
                        && (1..=col.dim).contains(dimension)
                    {
                        let mut data = Vec::with_capacity(rows * dimension);
                        truncate_flat(&col.data, col.dim, *dimension, &mut data);
                        normalize_flat(&mut data, *dimension);
                        truncated.insert(
                            to.column.clone(),
                            VectorColumn {
                                dim: *dimension,
                                data,
                                valid: col.valid.clone(),
                            },
                        );
                    }
                    steps.push(step_review(
                        &p,
                        sample,
                        &truncated,
                        (m, i, "truncate"),
                        (from, space),
                        opts.k,
                        (None, &[]),
                        None,
                        opts.projection,
                    ));
                    if *activate {
                        active = Some(space.clone());
                    }
                }
                Step::SetActiveSpace { space } => active = Some(space.clone()),
                _ => {}
            }
        }
    }
    let declared: Vec<&InvariantSpec> = pending
        .iter()
        .flat_map(|m| m.invariants.iter())
        .chain(opts.invariants.iter())
        .collect();
    let invariants = sample_invariants(sample, &p, &truncated, &declared);
    let mut reasons = Vec::new();
    let mut verdict = Verdict::Pass;
    let mut worse = |v: Verdict, why: String, verdict: &mut Verdict| {
        if v != Verdict::Pass {
            reasons.push(why);
        }
        if v > *verdict {
            *verdict = v;
        }
    };
    let errors = p.errors().count();
    if errors > 0 {
        worse(
            Verdict::Block,
            format!("lint found {errors} error(s)"),
            &mut verdict,
        );
    }
    for s in &steps {
        if let Some(c) = &s.check {
            worse(
                c.verdict,
                format!(
                    "{} step {} ({} `{}` -> `{}`): {}",
                    s.file,
                    s.step + 1,
                    s.op,
                    s.from,
                    s.to,
                    c.mode_failure.clone().unwrap_or_else(|| {
                        let hit: Vec<String> = c
                            .gates
                            .iter()
                            .filter(|g| g.verdict != Verdict::Pass)
                            .map(|g| format!("{} {}", g.metric, g.verdict.as_str()))
                            .collect();
                        hit.join(", ")
                    })
                ),
                &mut verdict,
            );
        }
    }
    for r in invariants.iter().filter(|r| r.blocks()) {
        worse(
            Verdict::Block,
            format!("invariant {} failed on the sample: {}", r.name, r.message),
            &mut verdict,
        );
    }
    Ok(Review {
        plan: p,
        sample_rows: rows,
        store_rows: snap.rows,
        steps,
        invariants,
        verdict,
        reasons,
    })
}

#[allow(clippy::too_many_arguments)]
fn step_review(
    p: &Plan,
    sample: &Sample,
    computed: &BTreeMap<String, VectorColumn>,
    (m, index, op): (&Migration, usize, &str),
    (from, to): (&str, &str),
    k: usize,
    (mode, gates): (Option<CompatMode>, &[Gate]),
    embedder: Option<&str>,
    projection: bool,
) -> StepReview {
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
    match check_pair(a, b, &old, &new, k, mode, gates, None) {
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

fn sample_invariants(
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

impl std::fmt::Display for Review {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "review on a sample of {} of {} rows: {}",
            self.sample_rows,
            self.store_rows,
            self.verdict.as_str().to_uppercase()
        )?;
        for r in &self.reasons {
            writeln!(f, "  - {r}")?;
        }
        writeln!(f, "\nplan:")?;
        write!(f, "{}", self.plan)?;
        for s in &self.steps {
            writeln!(
                f,
                "\n{} step {} ({}): `{}` -> `{}`",
                s.file,
                s.step + 1,
                s.op,
                s.from,
                s.to
            )?;
            if let Some(c) = &s.check {
                write!(f, "{c}")?;
            }
            if let Some(n) = &s.note {
                writeln!(f, "  note: {n}")?;
            }
        }
        writeln!(f, "\ninvariants on the sample:")?;
        for r in &self.invariants {
            writeln!(f, "  {r}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::migration::parse_folder;
    use crate::space::Space;
    use crate::state::StoreState;

    fn unit(seed: u64, n: usize, d: usize) -> Vec<f32> {
        let mut x = seed;
        let mut out = Vec::with_capacity(n * d);
        for _ in 0..n * d {
            x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
            #[allow(clippy::cast_precision_loss)]
            out.push(((x >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0);
        }
        normalize_flat(&mut out, d);
        out
    }

    /// A store with space `old` (16-d) and a folder that adds `new` (16-d) by re-embed.
    fn setup(new: Vec<f32>, gates: &str) -> (Vec<Migration>, Sample) {
        let n = 200;
        let old_space = Space::new("old", 16).with_normalized(true);
        let mut snap = Snapshot::fresh();
        snap.rows = 10_000;
        snap.state = StoreState {
            spaces: vec![old_space.clone()],
            active_space: Some("old".into()),
            ..StoreState::default()
        };
        snap.fields.push(crate::schema::FieldDef {
            name: old_space.column.clone(),
            ty: crate::schema::FieldType::Vector(16),
            nullable: true,
        });
        let file = format!(
            "[[steps]]\nop = \"add_space\"\nspace = \"new\"\ndimension = 16\nnormalized = true\n\n[[steps]]\nop = \"reembed\"\nspace = \"new\"\nembedder = \"e\"\n{gates}"
        );
        let files = parse_folder(&[("0001_new.toml".into(), file)]).expect("parse");
        let mut vectors = BTreeMap::new();
        vectors.insert(
            "vec_old".to_owned(),
            VectorColumn {
                dim: 16,
                data: unit(1, n, 16),
                valid: vec![],
            },
        );
        vectors.insert(
            "vec_new".to_owned(),
            VectorColumn {
                dim: 16,
                data: new,
                valid: vec![],
            },
        );
        let sample = Sample {
            snapshot: snap,
            ids: (0..n).map(|i| format!("r{i}")).collect(),
            vectors,
            fields: BTreeMap::new(),
        };
        (files, sample)
    }

    #[test]
    fn same_vectors_pass_and_unrelated_ones_are_blocked_by_the_gate() {
        let gate = "\n[gates]\n\"overlap@10\" = { block_below = 0.5 }\n";
        let (files, sample) = setup(unit(1, 200, 16), gate);
        let r = review(&files, &sample, &ReviewOptions::default()).expect("review");
        assert_eq!(r.verdict, Verdict::Pass, "{r}");
        assert_eq!(r.steps.len(), 1);
        let s = &r.steps[0];
        assert_eq!((s.from.as_str(), s.to.as_str()), ("old", "new"));
        let c = s.check.as_ref().expect("check");
        assert!(c.metrics["overlap@10"] > 0.99, "{c}");
        let p = s.projection.as_ref().expect("projection");
        assert_eq!(p.old.len(), 400);
        assert_eq!(p.old, p.new, "same vectors, same picture");

        let (files, sample) = setup(unit(99, 200, 16), gate);
        let r = review(&files, &sample, &ReviewOptions::default()).expect("review");
        assert_eq!(r.verdict, Verdict::Block, "{r}");
        assert!(r.reasons[0].contains("overlap@10 block"), "{:?}", r.reasons);
        assert!(r.to_string().contains("BLOCK"));
    }

    #[test]
    fn a_missing_new_space_says_how_to_export_it_and_bad_vectors_fail_invariants() {
        let (files, mut sample) = setup(unit(1, 200, 16), "");
        sample.vectors.remove("vec_new");
        let r = review(&files, &sample, &ReviewOptions::default()).expect("review");
        let note = r.steps[0].note.as_deref().expect("note");
        assert!(note.contains("--embedder e=cmd:"), "{note}");
        assert!(r.steps[0].check.is_none());

        let (files, mut sample) = setup(unit(1, 200, 16), "");
        let col = sample.vectors.get_mut("vec_new").expect("new");
        col.data[5 * 16..6 * 16].fill(0.0);
        sample.ids[7] = "r0".into();
        let r = review(&files, &sample, &ReviewOptions::default()).expect("review");
        assert_eq!(r.verdict, Verdict::Block, "{r}");
        let failed: Vec<&str> = r
            .invariants
            .iter()
            .filter(|i| !i.passed)
            .map(|i| i.name.as_str())
            .collect();
        assert_eq!(failed, ["ids_unique", "vectors_valid[new]"], "{r}");
    }

    #[test]
    fn a_huge_dimension_is_a_shape_error_not_an_overflow() {
        // found while fuzzing the review (by reading the code the targets had not reached
        // yet; the input is kept in fuzz/regressions/review): rows * dim overflowed
        let (files, mut sample) = setup(unit(1, 200, 16), "");
        sample.vectors.get_mut("vec_old").expect("old").dim = 1 << 62;
        let e = review(&files, &sample, &ReviewOptions::default()).unwrap_err();
        assert!(e.to_string().contains("sample column `vec_old`"), "{e}");
        let col = VectorColumn {
            dim: usize::MAX,
            data: vec![1.0],
            valid: vec![],
        };
        assert_eq!(col.row(3), None);
    }

    #[test]
    fn a_truncation_to_zero_dimensions_is_a_lint_error_not_a_panic() {
        // found the same way: truncating into an existing space with `dimension = 0`
        // split the vectors into chunks of 0
        let (_, mut sample) = setup(vec![], "");
        sample.vectors.remove("vec_new");
        let file = "[[steps]]\nop = \"truncate\"\nfrom = \"old\"\nspace = \"old\"\ndimension = 0\n";
        let files = parse_folder(&[("0001_t.toml".into(), file.into())]).expect("parse");
        let r = review(&files, &sample, &ReviewOptions::default()).expect("review");
        assert_eq!(r.verdict, Verdict::Block, "{r}");
        assert!(r.plan.errors().count() > 0, "{r}");
    }

    #[test]
    fn a_truncation_is_previewed_from_the_old_vectors_alone() {
        let (_, sample) = setup(vec![], "");
        let mut sample = sample;
        sample.vectors.remove("vec_new");
        let file =
            "[[steps]]\nop = \"truncate\"\nfrom = \"old\"\nspace = \"old8\"\ndimension = 8\n";
        let files = parse_folder(&[("0001_t.toml".into(), file.into())]).expect("parse");
        let r = review(&files, &sample, &ReviewOptions::default()).expect("review");
        let c = r.steps[0].check.as_ref().expect("check");
        assert_eq!(c.to, "old8");
        assert!(c.metrics["overlap@10"] > c.metrics["overlap@10.baseline"]);
        assert!(r.invariants.iter().any(|i| i.name == "vectors_valid[old8]"));
    }
}
