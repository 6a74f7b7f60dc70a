//! Neighbourhood metrics of a large compatibility sample: memlane's exact kNN vs its
//! hnsw_rs path vs faiss-cpu HNSW with the same M / ef, same data, same run.
//!
//! On the paired sample of the compatibility benchmarks (`N` rows, new 384-d and old
//! 256-d, seeded), for both spaces:
//! - **exact**: memlane-core's blocked exact self-kNN (`knn`, as memlane ships: faer
//!   without rayon), then overlap@10 and recall@10 of old vs new neighbours;
//! - **hnsw**: the same through `compat::neighbours` with an HNSW graph (hnsw_rs on
//!   rayon), its recall against the exact tables over every row, and the recall it
//!   estimated itself on its 500-row check (what reports show);
//! - **faiss**: `IndexHNSWFlat` (inner product on normalised rows) with the same M,
//!   efConstruction, efSearch: build + search time and recall@10 vs exact on 500 rows
//!   (`benches/knn_faiss.py`, needs faiss-cpu from `benches/requirements.txt`).
//!
//! Prints a table and writes `benches/results/knn_large.json`.
//!
//! `cargo bench -p memlane-core --features hnsw --bench knn_large -- [N]` (default
//! 100000; memlane-core alone, so lance is not built), run by `make bench`.
#![allow(clippy::print_stdout, clippy::print_stderr)] // a benchmark prints its figures
#![allow(clippy::cast_precision_loss)]

use std::path::Path;
use std::process::Command;

use memlane_benchkit::paired::{NEW_DIM, OLD_DIM, sample};
use memlane_benchkit::{peer_script, python, record, timed, write_f32};
use memlane_core::compat::{
    CompatOptions, CompatReport, HnswParams, KnnPolicy, Matrix, Neighbors, compat, knn,
    neighborhood_scores, neighbours,
};
use memlane_core::space::Metric;

const K: usize = 10;

/// Share of the exact neighbour slots the approximate table also lists.
fn recall_vs(exact: &Neighbors, approx: &Neighbors) -> f64 {
    let hits: usize = exact
        .iter_rows()
        .zip(approx.iter_rows())
        .map(|(e, a)| e.iter().filter(|j| a.contains(j)).count())
        .sum();
    hits as f64 / (exact.rows() * exact.k()) as f64
}

fn faiss(dir: &Path, n: usize, p: HnswParams) -> Option<serde_json::Value> {
    let script = peer_script("knn_faiss.py");
    let out = Command::new(python())
        .arg(&script)
        .arg(dir)
        .args(
            [
                n,
                NEW_DIM,
                OLD_DIM,
                K,
                p.m,
                p.ef_construction,
                p.ef_search,
                500,
            ]
            .iter()
            .map(ToString::to_string),
        )
        .output()
        .ok()?;
    if !out.status.success() {
        eprintln!(
            "faiss side skipped: {}",
            String::from_utf8_lossy(&out.stderr)
                .lines()
                .last()
                .unwrap_or("")
        );
        return None;
    }
    let text = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(text.lines().last()?).ok()
}

/// The whole compatibility report (adapters included) with the given neighbour policy.
fn report(old: &Matrix<'_>, new: &Matrix<'_>, knn: KnnPolicy) -> (f64, CompatReport) {
    let opts = CompatOptions {
        knn,
        keep_per_row: false,
        ..CompatOptions::default()
    };
    timed(1, || compat(old, new, &opts).expect("compat"))
}

/// The largest difference between two reports' shared metrics (the graphs' own
/// `knn.*` figures aside), and its name.
fn worst_difference(a: &CompatReport, b: &CompatReport) -> (String, f64) {
    a.metrics
        .iter()
        .filter(|(name, _)| !name.starts_with("knn."))
        .filter_map(|(name, x)| b.metrics.get(name).map(|y| (name.clone(), (x - y).abs())))
        .max_by(|x, y| x.1.total_cmp(&y.1))
        .unwrap_or_default()
}

fn main() {
    let n: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(100_000);
    let (new, old) = sample(n);
    let nm = Matrix::new(&new, NEW_DIM).expect("new");
    let om = Matrix::new(&old, OLD_DIM).expect("old");
    let params = HnswParams::default();
    let policy = KnnPolicy::Hnsw(params);
    println!("{n} paired rows (new {NEW_DIM}d, old {OLD_DIM}d), k = {K}, HNSW {params:?}");

    let (exact_secs, (eo, en)) = timed(1, || {
        (
            knn(&om, K, Metric::Cosine).expect("exact old"),
            knn(&nm, K, Metric::Cosine).expect("exact new"),
        )
    });
    let (ov_e, rc_e) = neighborhood_scores(&eo, &en, 1).expect("scores");
    let (hnsw_secs, ((ho, ao), (hn, an))) = timed(1, || {
        (
            neighbours(&om, K, Metric::Cosine, &policy, "old").expect("hnsw old"),
            neighbours(&nm, K, Metric::Cosine, &policy, "new").expect("hnsw new"),
        )
    });
    let (ov_h, rc_h) = neighborhood_scores(&ho, &hn, 1).expect("scores");
    let (ao, an) = (ao.expect("graph"), an.expect("graph"));
    let true_old = recall_vs(&eo, &ho);
    let true_new = recall_vs(&en, &hn);

    // the whole report, as `apply` and `memlane review` compute it
    let (full_exact, r_exact) = report(&om, &nm, KnnPolicy::Exact);
    let (full_auto, r_auto) = report(&om, &nm, KnnPolicy::default());
    let (worst_name, worst) = worst_difference(&r_exact, &r_auto);

    let dir = tempfile_dir();
    write_f32(&dir.join("new.f32"), &new);
    write_f32(&dir.join("old.f32"), &old);
    let peer = faiss(&dir, n, params);
    let _ = std::fs::remove_dir_all(&dir);

    println!(
        "{:<28} {:>9} {:>9} {:>10} {:>10}",
        "path", "secs", "speedup", "overlap@10", "recall@10"
    );
    println!(
        "{:<28} {:>9.2} {:>9} {:>10.4} {:>10.4}",
        "exact (memlane)", exact_secs, "1.0x", ov_e.mean, rc_e.mean
    );
    println!(
        "{:<28} {:>9.2} {:>8.1}x {:>10.4} {:>10.4}",
        "hnsw_rs (memlane)",
        hnsw_secs,
        exact_secs / hnsw_secs,
        ov_h.mean,
        rc_h.mean
    );
    println!(
        "  graph recall@10 vs exact: old {true_old:.4} (estimated {:.4}), new {true_new:.4} (estimated {:.4}); metric error: overlap {:+.4}, recall {:+.4}",
        ao.recall_vs_exact,
        an.recall_vs_exact,
        ov_h.mean - ov_e.mean,
        rc_h.mean - rc_e.mean
    );
    if let Some(p) = &peer {
        let secs = p["secs"].as_f64().unwrap_or(f64::NAN);
        println!(
            "{:<28} {:>9.2} {:>8.1}x   recall@10 vs exact: old {:.4}, new {:.4} ({} threads); hnsw_rs / faiss time {:.2}x",
            "faiss HNSW (same M/ef)",
            secs,
            exact_secs / secs,
            p["old"]["recall_vs_exact"].as_f64().unwrap_or(f64::NAN),
            p["new"]["recall_vs_exact"].as_f64().unwrap_or(f64::NAN),
            p["threads"],
            hnsw_secs / secs
        );
    }
    println!(
        "whole compatibility report (adapters fitted): exact {full_exact:.2} s, default policy (hnsw above {} rows) {full_auto:.2} s, {:.1}x; largest metric difference {worst:.4} ({worst_name})",
        memlane_core::compat::EXACT_UP_TO,
        full_exact / full_auto
    );
    let path = record(
        "knn_large",
        &serde_json::json!({
            "rows": n, "k": K, "new_dim": NEW_DIM, "old_dim": OLD_DIM,
            "hnsw_params": params,
            "threads": std::thread::available_parallelism().map_or(0, std::num::NonZero::get),
            "exact": {"secs": exact_secs, "overlap": ov_e.mean, "recall": rc_e.mean,
                      "note": "memlane-core exact blocked kNN as shipped (faer, one thread)"},
            "hnsw": {"secs": hnsw_secs, "overlap": ov_h.mean, "recall": rc_h.mean,
                     "speedup_vs_exact": exact_secs / hnsw_secs,
                     "graph_recall_vs_exact": {"old": true_old, "new": true_new},
                     "estimated_recall_vs_exact": {"old": ao.recall_vs_exact, "new": an.recall_vs_exact},
                     "metric_error": {"overlap": ov_h.mean - ov_e.mean, "recall": rc_h.mean - rc_e.mean}},
            "faiss_hnsw": peer,
            "whole_report": {"exact_secs": full_exact, "default_secs": full_auto,
                             "speedup": full_exact / full_auto,
                             "largest_metric_difference": worst, "metric": worst_name},
        }),
    );
    println!("figures written to {}", path.display());
}

fn tempfile_dir() -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("memlane-knn-large-{}", std::process::id()));
    std::fs::create_dir_all(&d).expect("temp dir");
    d
}
