//! Timing sanity check of the exact k-nearest-neighbour search and the overlap metric.
//!
//! ```text
//! cargo run --release -p memlane-core --example knn_timing [-- ROWS DIM K]
//! ```
//!
//! Defaults: 10 000 rows of dimension 384, k = 10 (the size of the benchmark target:
//! overlap@10 at most as slow as numpy + OpenBLAS matmul + argpartition).
#![allow(clippy::print_stdout, clippy::cast_precision_loss)]

use std::time::Instant;

use memlane_core::compat::{Matrix, knn, neighborhood_scores};
use memlane_core::space::Metric;

/// Uniform-ish values in [-1, 1) from splitmix64 (no rand crate).
fn random(n: usize, seed: u64) -> Vec<f32> {
    let mut s = seed;
    (0..n)
        .map(|_| {
            s = s.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = s;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^= z >> 31;
            ((z >> 40) as f32 / (1u64 << 23) as f32) - 1.0
        })
        .collect()
}

fn main() {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .map(|a| a.parse().expect("ROWS DIM K are integers"))
        .collect();
    let n = args.first().copied().unwrap_or(10_000);
    let d = args.get(1).copied().unwrap_or(384);
    let k = args.get(2).copied().unwrap_or(10);
    let old = random(n * d, 1);
    // The "new" space: the old vectors plus noise, so overlap is high but not 1.
    let noise = random(n * d, 2);
    let new: Vec<f32> = old.iter().zip(&noise).map(|(a, b)| a + 0.3 * b).collect();
    let (om, nm) = (Matrix::new(&old, d).unwrap(), Matrix::new(&new, d).unwrap());
    println!(
        "{n} x {d}, k = {k}, faer parallelism {:?}",
        faer::get_global_parallelism()
    );
    for metric in [Metric::Cosine, Metric::L2] {
        let t = Instant::now();
        let nn = knn(&om, k, metric).unwrap();
        println!(
            "knn {:<6} {:>8.3} s ({} rows)",
            metric.as_str(),
            t.elapsed().as_secs_f64(),
            nn.rows()
        );
    }
    let t = Instant::now();
    let a = knn(&om, k, Metric::Cosine).unwrap();
    let b = knn(&nm, k, Metric::Cosine).unwrap();
    let (overlap, recall) = neighborhood_scores(&a, &b, 7).unwrap();
    println!(
        "overlap@{k} (two knn + scores) {:>8.3} s: overlap {:.4} (baseline {:.4}), recall {:.4}",
        t.elapsed().as_secs_f64(),
        overlap.mean,
        overlap.baseline,
        recall.mean
    );
}
