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

mod invariants;
mod steps;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

pub use steps::check_pair;

use crate::compat::{CompatReport, Verdict};
use crate::error::{CompatError, Result};
use crate::migration::{InvariantSpec, Migration};
use crate::plan::{Plan, Snapshot, plan};
use crate::report::{CompatCheck, InvariantResult};
use invariants::sample_invariants;
use steps::review_steps;

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

/// Review `files` (every migration of the folder, applied ones included, as `apply`
/// reads them) against `sample`.
pub fn review(files: &[Migration], sample: &Sample, opts: &ReviewOptions) -> Result<Review> {
    let snap = &sample.snapshot;
    let p = plan(snap, files)?;
    check_shapes(sample)?;
    let pending: Vec<&Migration> = p
        .migrations
        .iter()
        .filter_map(|pm| files.iter().find(|m| m.id == pm.id))
        .collect();
    let (steps, truncated) = review_steps(&p, sample, opts, &pending);
    let declared: Vec<&InvariantSpec> = pending
        .iter()
        .flat_map(|m| m.invariants.iter())
        .chain(opts.invariants.iter())
        .collect();
    let invariants = sample_invariants(sample, &p, &truncated, &declared);
    let (verdict, reasons) = verdict(&p, &steps, &invariants);
    Ok(Review {
        plan: p,
        sample_rows: sample.ids.len(),
        store_rows: snap.rows,
        steps,
        invariants,
        verdict,
        reasons,
    })
}

/// Refuse a sample whose vector columns do not hold one vector (and one validity flag)
/// per row.
fn check_shapes(sample: &Sample) -> Result<()> {
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
    Ok(())
}

/// The worst verdict of the plan's lint, the steps' checks and the sample's
/// invariants, with one reason per part that does not pass.
fn verdict(
    p: &Plan,
    steps: &[StepReview],
    invariants: &[InvariantResult],
) -> (Verdict, Vec<String>) {
    let mut reasons = Vec::new();
    let mut verdict = Verdict::Pass;
    let mut worse = |v: Verdict, why: String| {
        if v != Verdict::Pass {
            reasons.push(why);
        }
        if v > verdict {
            verdict = v;
        }
    };
    let errors = p.errors().count();
    if errors > 0 {
        worse(Verdict::Block, format!("lint found {errors} error(s)"));
    }
    for s in steps {
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
            );
        }
    }
    for r in invariants.iter().filter(|r| r.blocks()) {
        worse(
            Verdict::Block,
            format!("invariant {} failed on the sample: {}", r.name, r.message),
        );
    }
    (verdict, reasons)
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
    use crate::space::normalize_flat;
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
