//! The compatibility analysis of memlane-core against numpy, same run, same data:
//!
//! - (a) overlap@10 + recall@10: two exact cosine kNN self-searches and the paired scores
//!   (memlane blocked faer products vs numpy matmul + argpartition);
//! - (b) Procrustes of new onto old on the whole sample (f64 SVD, fit measures);
//! - (c) applying an adapter to one query at a time (`Adapter::apply_into`), both in a
//!   fresh child process that loads the fitted adapters from JSON and has never run a faer
//!   kernel, and in the bench process right after fitting it (faer products). Two columns
//!   because the plain-loop `apply_into` before 8b17a3b ran 6.5-9 us fresh but ~36 us once
//!   faer had run in the process (AMD EPYC, SSE2 baseline build; the same code built with
//!   `-C target-cpu=x86-64-v3` stayed at ~7 us: an AVX/SSE transition cost). Through faer's
//!   kernels both columns should agree.
//!
//! The sample is synthetic and seeded: `N` "new" vectors (384-d, low-rank structure plus
//! noise) and their "old" counterparts (256-d, a random projection of the new ones plus
//! noise), written as raw `f32` files for `benches/compat_numpy.py`, which is run twice
//! (OpenBLAS on one thread, then on its default thread count) with
//! `$HOME/.cache/memlane/venv/bin/python` when it exists, else `python3`.
//!
//! `cargo bench -p memlane-benches --bench compat -- [N] [REPS]` (defaults 10000 and 3);
//! add `--features parallel` to run faer on rayon (memlane-core's `parallel` feature).
#![allow(clippy::print_stdout, clippy::print_stderr)] // a benchmark prints its figures
#![allow(clippy::cast_precision_loss, clippy::cast_possible_truncation)]

use std::collections::BTreeMap;
use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use memlane_core::compat::{
    Adapter, AdapterKind, CompatOptions, FitOptions, Matrix, PairedScore, Procrustes, compat,
    fit_adapters, knn, neighborhood_scores, procrustes,
};
use memlane_core::space::Metric;

use memlane_benches::paired::{NEW_DIM, OLD_DIM, SEED, sample};
use memlane_benches::{python, timed, write_f32};

const K: usize = 10;

/// Run the numpy side; `threads` pins OpenBLAS (`None`: its default).
fn numpy(dir: &Path, n: usize, reps: usize, threads: Option<usize>) -> serde_json::Value {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("compat_numpy.py");
    let mut cmd = Command::new(python());
    cmd.arg(&script).arg(dir).args(
        [n, NEW_DIM, OLD_DIM, K, reps]
            .iter()
            .map(ToString::to_string),
    );
    if let Some(t) = threads {
        for var in ["OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"] {
            cmd.env(var, t.to_string());
        }
    }
    let out = cmd.output().expect("run python (numpy side)");
    assert!(
        out.status.success(),
        "{} {}: {}",
        python().display(),
        script.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(text.lines().last().unwrap_or("{}")).expect("numpy JSON")
}

/// Median nanoseconds of one `apply_into` call, over `queries` single-query calls per rep.
fn apply_ns(adapter: &Adapter, new: &Matrix<'_>, reps: usize, queries: usize) -> f64 {
    let mut out = vec![0f32; adapter.out_dim()];
    let (secs, ()) = timed(reps, || {
        for q in 0..queries {
            adapter.apply_into(black_box(new.row(q % new.rows())), &mut out);
            black_box(&out);
        }
    });
    secs * 1e9 / queries as f64
}

/// Child mode: time `apply_into` of the adapters saved in `dir` on `dir/new.f32`.
fn apply_child(dir: &Path, reps: usize, queries: usize) {
    let text = std::fs::read_to_string(dir.join("adapters.json")).expect("adapters.json");
    let adapters: Vec<Adapter> = serde_json::from_str(&text).expect("adapters");
    let bytes = std::fs::read(dir.join("new.f32")).expect("new.f32");
    let new: Vec<f32> = bytes
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    let nm = Matrix::new(&new, NEW_DIM).expect("new");
    let ns: Vec<f64> = adapters
        .iter()
        .map(|a| apply_ns(a, &nm, reps, queries))
        .collect();
    println!("{}", serde_json::json!({ "ns": ns }));
}

fn fit_one(old: &Matrix<'_>, new: &Matrix<'_>, kind: AdapterKind) -> Adapter {
    let opts = FitOptions {
        kinds: vec![kind],
        min_retention: 0.0,
        min_recall: 0.0,
        ..FitOptions::default()
    };
    fit_adapters(old, new, &opts)
        .expect("fit")
        .adapter
        .expect("chosen with no thresholds")
}

fn f(v: &serde_json::Value, path: &[&str]) -> f64 {
    path.iter()
        .fold(v, |v, p| &v[*p])
        .as_f64()
        .unwrap_or(f64::NAN)
}

/// The wasm build's compat report on the files in `dir`, timed under Node.js by
/// `bindings/wasm/bench/compat_wasm.mjs` (`None` without node or a wasm build).
fn wasm_compat(dir: &Path, reps: usize) -> Option<serde_json::Value> {
    let pkg = std::env::var_os("MEMLANE_WASM_NODE_PKG").map_or_else(
        || {
            PathBuf::from(std::env::var_os("HOME").unwrap_or_default())
                .join(".cache/memlane/wasm-node-pkg")
        },
        PathBuf::from,
    );
    if !pkg.join("memlane_wasm.js").exists() {
        return None;
    }
    let script =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../bindings/wasm/bench/compat_wasm.mjs");
    let out = Command::new("node")
        .arg(script)
        .arg(dir)
        .arg(reps.to_string())
        .env("MEMLANE_WASM_NODE_PKG", &pkg)
        .output()
        .ok()?;
    if !out.status.success() {
        println!(
            "wasm bench failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        return None;
    }
    serde_json::from_str(String::from_utf8_lossy(&out.stdout).trim()).ok()
}

/// Single-query `apply_into` calls timed per adapter and rep.
const QUERIES: usize = 20_000;

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    if args.first().map(String::as_str) == Some("apply") {
        let reps = args[2].parse().expect("reps");
        apply_child(Path::new(&args[1]), reps, QUERIES);
        return;
    }
    let args: Vec<usize> = args
        .iter()
        .map(|a| a.parse().expect("usage: compat [N] [REPS]"))
        .collect();
    let n = args.first().copied().unwrap_or(10_000);
    let reps = args.get(1).copied().unwrap_or(3).max(1);
    let run = Run::measure(n, reps);
    run.print_header();
    run.print_kernels();
    run.print_report();
    run.print_adapters();
    run.check_agreement();
}

/// Everything one bench run measured, memlane's side and numpy's.
struct Run {
    /// Paired rows.
    n: usize,
    /// Repetitions per timing (the median is reported).
    reps: usize,
    /// Seconds to generate and write the sample.
    gen_secs: f64,
    /// (a) and (b): the kNN scores and Procrustes.
    kernels: Kernels,
    /// (c): the adapters fitted and applied.
    adapters: Adapters,
    /// (d): seconds of the whole native compat report, and its metrics.
    report_secs: f64,
    /// The native report's metrics, by name.
    report_metrics: BTreeMap<String, f64>,
    /// The wasm build's report under Node.js, when it ran.
    wasm: Option<serde_json::Value>,
    /// numpy on one OpenBLAS thread.
    np1: serde_json::Value,
    /// numpy on its default thread count.
    npd: serde_json::Value,
}

/// (a) overlap and recall of two kNN self-searches, (b) Procrustes: timings and values.
struct Kernels {
    /// Median seconds of (a).
    knn_secs: f64,
    /// Overlap@k of (a).
    overlap: PairedScore,
    /// Recall@k of (a).
    recall: PairedScore,
    /// Median seconds of (b).
    proc_secs: f64,
    /// The fit of (b).
    procrustes: Procrustes,
}

/// (c) the adapters: the full search, then one of each kind fitted and applied.
struct Adapters {
    /// Seconds of `fit_adapters` with every kind (held-out choice included).
    fit_all_secs: f64,
    /// The kind that search chose.
    chosen: Option<AdapterKind>,
    /// One adapter per kind, fitted with no thresholds.
    fitted: Vec<Adapter>,
    /// Median ns per `apply_into` in this process, right after the fit (faer has run).
    after_faer_ns: Vec<f64>,
    /// Median ns per `apply_into` in a fresh child process.
    fresh_ns: Vec<f64>,
    /// Median ns per row of `apply_batch` over the whole sample.
    batch_ns: Vec<f64>,
}

impl Run {
    /// Generate the sample, time every part on both sides (in the order printed in the
    /// module docs), and clean the temporary directory up.
    fn measure(n: usize, reps: usize) -> Self {
        let t = Instant::now();
        let (new, old) = sample(n);
        let dir = std::env::temp_dir().join(format!("memlane-bench-compat-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        write_f32(&dir.join("new.f32"), &new);
        write_f32(&dir.join("old.f32"), &old);
        let gen_secs = t.elapsed().as_secs_f64();
        let (nm, om) = (
            Matrix::new(&new, NEW_DIM).expect("new"),
            Matrix::new(&old, OLD_DIM).expect("old"),
        );
        let kernels = Kernels::measure(&om, &nm, reps);
        let adapters = Adapters::measure(&om, &nm, &dir, reps);
        let np1 = numpy(&dir, n, reps, Some(1));
        let npd = numpy(&dir, n, reps, None);
        // (d) the whole report (what `memlane compat`, `apply` and the browser preview
        // compute), native here and in the wasm build under Node.js on the same files
        let (report_secs, report) = timed(reps, || {
            compat(&om, &nm, &CompatOptions::default()).expect("compat report")
        });
        let wasm = wasm_compat(&dir, reps);
        let _ = std::fs::remove_dir_all(&dir);
        Run {
            n,
            reps,
            gen_secs,
            kernels,
            adapters,
            report_secs,
            report_metrics: report.metrics,
            wasm,
            np1,
            npd,
        }
    }

    /// What ran where, and the header of the timing table.
    fn print_header(&self) {
        let (n, reps, gen_secs) = (self.n, self.reps, self.gen_secs);
        let threads = if cfg!(feature = "parallel") {
            format!(
                "faer on rayon ({} threads)",
                std::thread::available_parallelism().map_or(1, usize::from)
            )
        } else {
            "faer sequential (1 thread)".to_string()
        };
        println!(
            "compat: {n} paired rows, new {NEW_DIM}-d -> old {OLD_DIM}-d, k = {K}, median of {reps} (sample generated in {gen_secs:.2} s)"
        );
        println!(
            "memlane-core: {threads}; numpy {} (OpenBLAS: 1 thread / default on {} cpus), {}",
            self.npd["numpy"].as_str().unwrap_or("?"),
            self.npd["cpus"],
            python().display()
        );
        println!();
        println!(
            "{:<44} {:>10} {:>11} {:>7} {:>11} {:>7}",
            "", "memlane", "numpy 1 thr", "ratio", "numpy dflt", "ratio"
        );
    }

    /// Rows (a) and (b): memlane against numpy on one thread and on its default.
    fn print_kernels(&self) {
        let row = |name: &str, ours: f64, key: &str| {
            let (a, b) = (f(&self.np1, &[key]), f(&self.npd, &[key]));
            println!(
                "{name:<44} {ours:>8.3} s {a:>9.3} s {:>6.2}x {b:>9.3} s {:>6.2}x",
                ours / a,
                ours / b
            );
        };
        row(
            "(a) overlap@10 + recall@10 (2 kNN + scores)",
            self.kernels.knn_secs,
            "neighbourhood_secs",
        );
        row(
            "(b) Procrustes fit + measures (f64 SVD)",
            self.kernels.proc_secs,
            "procrustes_secs",
        );
        println!();
    }

    /// (d): the whole report, native against wasm under Node.js.
    fn print_report(&self) {
        let report_secs = self.report_secs;
        match &self.wasm {
            Some(w) => {
                let ws = w["secs"].as_f64().unwrap_or(f64::NAN);
                let agree = self
                    .report_metrics
                    .iter()
                    .map(|(k, v)| (w["metrics"][k].as_f64().unwrap_or(f64::NAN) - v).abs())
                    .fold(0.0f64, f64::max);
                println!(
                    "(d) whole compat report (kNN, scores, CKA, Procrustes, adapter fits): native {report_secs:.3} s, wasm under node {ws:.3} s: {:.2}x (goal <= 2x); largest metric difference {agree:.1e}",
                    ws / report_secs
                );
            }
            None => println!(
                "(d) whole compat report: native {report_secs:.3} s; wasm skipped (no Node.js or no wasm build: run `make check-wasm`)"
            ),
        }
        println!();
    }

    /// (c): one line per adapter, fresh, after faer and batched, then the search.
    fn print_adapters(&self) {
        let (n, a) = (self.n, &self.adapters);
        println!(
            "(c) adapter apply, one query per call (apply_into, {QUERIES} calls), goal < 10 us (10000 ns):"
        );
        println!(
            "    {:<44} {:>9} {:>11} {:>9} {:>7}",
            "adapter", "fresh ns", "after faer", "batch ns", "madds"
        );
        let times = a.after_faer_ns.iter().zip(&a.fresh_ns).zip(&a.batch_ns);
        for (ad, ((ns, fns), bns)) in a.fitted.iter().zip(times) {
            println!(
                "    {:<44} {fns:>9.0} {ns:>11.0} {bns:>9.0} {:>7}",
                format!("{} {}->{}", ad.describe(), ad.in_dim(), ad.out_dim()),
                ad.cost(),
            );
        }
        println!(
            "    {:<44} {:>9.0}   (python loop: normalise, q @ W; default threads)",
            "numpy dense 384->256 (reference)",
            f(&self.npd, &["apply_dense_secs_per_query"]) * 1e9
        );
        println!(
            "    fresh: child process that never ran faer; after faer: this process, right after fitting it (faer); batch: apply_batch on {n} rows, per row"
        );
        println!(
            "    fit_adapters (all kinds, held-out choice) on {n} rows: {:.2} s, chose {}",
            a.fit_all_secs,
            a.chosen.map_or("none", AdapterKind::as_str)
        );
    }

    /// Both sides must have measured the same thing: the values of (a) and (b) against
    /// both numpy runs (panics past the tolerance), then the shuffled baselines.
    fn check_agreement(&self) {
        let (overlap, recall, proc) = (
            &self.kernels.overlap,
            &self.kernels.recall,
            &self.kernels.procrustes,
        );
        println!();
        println!(
            "{:<32} {:>10} {:>10} {:>10}",
            "metric (numpy run)", "memlane", "numpy", "|diff|"
        );
        let check = |name: &str, ours: f64, theirs: f64, tol: f64| {
            let d = (ours - theirs).abs();
            println!("{name:<32} {ours:>10.6} {theirs:>10.6} {d:>10.2e}");
            assert!(
                d < tol,
                "{name}: memlane {ours} vs numpy {theirs} differ by more than {tol}"
            );
        };
        for (np, run) in [(&self.np1, "1 thr"), (&self.npd, "dflt")] {
            let check = |name: &str, ours: f64, key: &[&str], tol: f64| {
                check(&format!("{name} ({run})"), ours, f(np, key), tol);
            };
            // Near-ties at the k-th neighbour can fall either way between two f32 kernels;
            // each flip moves a mean by about 1/(k n), so 1e-3 allows ~100 flips.
            check(
                "overlap@10",
                overlap.mean,
                &["neighbourhood", "overlap"],
                1e-3,
            );
            check("recall@10", recall.mean, &["neighbourhood", "recall"], 1e-3);
            check(
                "procrustes.residual",
                proc.residual,
                &["procrustes", "residual"],
                1e-6,
            );
            check(
                "procrustes.mean_cosine",
                proc.mean_cosine,
                &["procrustes", "mean_cosine"],
                1e-6,
            );
            check(
                "procrustes.scale",
                proc.scale,
                &["procrustes", "scale"],
                1e-6,
            );
        }
        // Baselines use different shuffles on each side: same level, not the same value.
        println!(
            "baselines (different shuffles): overlap {:.4} / {:.4}, recall {:.4} / {:.4}; k/(n-1) = {:.4}",
            overlap.baseline,
            f(&self.npd, &["neighbourhood", "overlap_baseline"]),
            recall.baseline,
            f(&self.npd, &["neighbourhood", "recall_baseline"]),
            K as f64 / (self.n - 1) as f64
        );
    }
}

impl Kernels {
    /// (a) two kNN self-searches and the paired scores; (b) Procrustes of new onto old,
    /// fit and measures.
    fn measure(om: &Matrix<'_>, nm: &Matrix<'_>, reps: usize) -> Self {
        let (knn_secs, (overlap, recall)) = timed(reps, || {
            let a = knn(om, K, Metric::Cosine).expect("knn old");
            let b = knn(nm, K, Metric::Cosine).expect("knn new");
            neighborhood_scores(&a, &b, SEED).expect("scores")
        });
        let (proc_secs, procrustes) = timed(reps, || {
            procrustes(om, nm, Metric::Cosine).expect("procrustes")
        });
        Kernels {
            knn_secs,
            overlap,
            recall,
            proc_secs,
            procrustes,
        }
    }
}

impl Adapters {
    /// (c) adapters fitted on the same sample (held-out choice included), then applied:
    /// each right after its fit in this process, then in a fresh child process that
    /// loads them from `dir`, then batched.
    fn measure(om: &Matrix<'_>, nm: &Matrix<'_>, dir: &Path, reps: usize) -> Self {
        let t = Instant::now();
        let all = fit_adapters(om, nm, &FitOptions::default()).expect("fit all");
        let fit_all_secs = t.elapsed().as_secs_f64();
        let (fitted, after_faer_ns): (Vec<Adapter>, Vec<f64>) = AdapterKind::ALL
            .iter()
            .map(|&k| {
                let a = fit_one(om, nm, k);
                let ns = apply_ns(&a, nm, reps, QUERIES);
                (a, ns)
            })
            .unzip();
        let fresh_ns = fresh_apply_ns(&fitted, dir, reps);
        let batch_ns: Vec<f64> = fitted
            .iter()
            .map(|a| {
                let (s, _) = timed(reps, || a.apply_batch(black_box(nm.data())));
                s * 1e9 / nm.rows() as f64
            })
            .collect();
        Adapters {
            fit_all_secs,
            chosen: all.chosen,
            fitted,
            after_faer_ns,
            fresh_ns,
            batch_ns,
        }
    }
}

/// Median ns per `apply_into` of each adapter in a fresh child process (this bench in
/// `apply` mode), which reads them from `dir/adapters.json`.
fn fresh_apply_ns(adapters: &[Adapter], dir: &Path, reps: usize) -> Vec<f64> {
    std::fs::write(
        dir.join("adapters.json"),
        serde_json::to_string(adapters).expect("adapters to JSON"),
    )
    .expect("write adapters");
    let out = Command::new(std::env::current_exe().expect("exe"))
        .args(["apply".as_ref(), dir.as_os_str(), reps.to_string().as_ref()])
        .output()
        .expect("apply child");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let child: serde_json::Value =
        serde_json::from_str(String::from_utf8_lossy(&out.stdout).trim()).expect("child JSON");
    (0..adapters.len())
        .map(|i| child["ns"][i].as_f64().unwrap_or(f64::NAN))
        .collect()
}
