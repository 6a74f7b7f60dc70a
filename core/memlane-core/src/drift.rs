//! Distribution drift of a space's vectors between two versions (issue 6): summary
//! statistics (mean vector, norm mean and spread) and the maximum mean discrepancy
//! (MMD², RBF kernel, median-distance bandwidth) of two samples with a permutation
//! test, as Evidently does for embeddings. A space whose vectors moved while its model
//! identity did not is the sign of a silently changed model.

use serde::{Deserialize, Serialize};

use crate::compat::Matrix;

/// Summary statistics of a sample of vectors.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VectorStats {
    /// Rows summarised.
    pub rows: usize,
    /// Mean of the norms.
    pub norm_mean: f64,
    /// Standard deviation of the norms.
    pub norm_std: f64,
    /// The mean vector.
    pub mean: Vec<f32>,
}

/// Statistics of the rows of `m`.
pub fn vector_stats(m: &Matrix<'_>) -> VectorStats {
    let (n, d) = (m.rows(), m.dim());
    let mut mean = vec![0f64; d];
    let mut norms = Vec::with_capacity(n);
    for r in m.iter_rows() {
        let mut sq = 0f64;
        for (acc, x) in mean.iter_mut().zip(r) {
            *acc += f64::from(*x);
            sq += f64::from(*x) * f64::from(*x);
        }
        norms.push(sq.sqrt());
    }
    #[allow(clippy::cast_precision_loss)]
    let nf = n.max(1) as f64;
    let norm_mean = norms.iter().sum::<f64>() / nf;
    let norm_std = (norms.iter().map(|x| (x - norm_mean).powi(2)).sum::<f64>() / nf).sqrt();
    #[allow(clippy::cast_possible_truncation)]
    let mean = mean.into_iter().map(|x| (x / nf) as f32).collect();
    VectorStats {
        rows: n,
        norm_mean,
        norm_std,
        mean,
    }
}

/// The drift of a space between two samples.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Drift {
    /// Statistics of the earlier sample.
    pub before: VectorStats,
    /// Statistics of the later sample.
    pub after: VectorStats,
    /// Cosine between the two mean vectors (1 = same direction).
    pub mean_cosine: f64,
    /// Unbiased MMD² of the samples (RBF kernel).
    pub mmd2: f64,
    /// Share of label permutations whose MMD² reached the observed one (the p-value).
    pub p_value: f64,
    /// Kernel bandwidth used (median pairwise distance).
    pub bandwidth: f64,
    /// Whether the distribution moved (p-value at most 0.01 and MMD² above 0.01).
    pub moved: bool,
}

/// Squared distance in f64, over eight independent accumulators (so that it vectorises).
fn sq_dist(a: &[f32], b: &[f32]) -> f64 {
    let mut acc = [0f64; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f64 = ca
        .remainder()
        .iter()
        .zip(cb.remainder())
        .map(|(x, y)| (f64::from(*x) - f64::from(*y)).powi(2))
        .sum();
    for (x, y) in ca.zip(cb) {
        for l in 0..8 {
            let d = f64::from(x[l]) - f64::from(y[l]);
            acc[l] += d * d;
        }
    }
    acc.iter().sum::<f64>() + tail
}

/// A pooled kernel matrix with a zero diagonal, and what every labelling shares.
struct Kernel {
    k: Vec<f64>,
    n: usize,
    /// Per row, the sum of its entries.
    row_sums: Vec<f64>,
    /// Sum of all entries.
    total: f64,
}

impl Kernel {
    fn new(mut k: Vec<f64>, n: usize) -> Self {
        for i in 0..n {
            k[i * n + i] = 0.0;
        }
        let row_sums: Vec<f64> = k.chunks_exact(n).map(|r| r.iter().sum()).collect();
        let total = row_sums.iter().sum();
        Kernel {
            k,
            n,
            row_sums,
            total,
        }
    }

    /// Unbiased MMD² of a labelling (`true` = sample b). Only the b-b block is summed:
    /// the a-b sum follows from the row sums, and the a-a sum from the total.
    fn mmd2(&self, label: &[bool]) -> f64 {
        let b: Vec<usize> = (0..self.n).filter(|i| label[*i]).collect();
        let mut sbb = 0f64;
        let mut cb = 0f64;
        for &i in &b {
            let row = &self.k[i * self.n..(i + 1) * self.n];
            sbb += b.iter().map(|&j| row[j]).sum::<f64>();
            cb += self.row_sums[i];
        }
        let sab = 2.0 * (cb - sbb);
        let saa = self.total - sbb - sab;
        #[allow(clippy::cast_precision_loss)]
        let (na, nb) = ((self.n - b.len()) as f64, b.len() as f64);
        saa / (na * (na - 1.0)) + sbb / (nb * (nb - 1.0)) - sab / (na * nb)
    }
}

/// Compare two samples of the same space (at most a few thousand rows each; the
/// kernel matrix is quadratic). `permutations` label shuffles give the p-value.
pub fn drift(a: &Matrix<'_>, b: &Matrix<'_>, permutations: usize, seed: u64) -> Option<Drift> {
    if a.dim() != b.dim() || a.rows() < 2 || b.rows() < 2 {
        return None;
    }
    let rows: Vec<&[f32]> = a.iter_rows().chain(b.iter_rows()).collect();
    let n = rows.len();
    let mut d2 = vec![0f64; n * n];
    for i in 0..n {
        for j in (i + 1)..n {
            let v = sq_dist(rows[i], rows[j]);
            d2[i * n + j] = v;
            d2[j * n + i] = v;
        }
    }
    let mut off: Vec<f64> = (0..n)
        .flat_map(|i| ((i + 1)..n).map(move |j| (i, j)))
        .map(|(i, j)| d2[i * n + j])
        .collect();
    let mid = off.len() / 2;
    let med = if off.is_empty() {
        1.0
    } else {
        *off.select_nth_unstable_by(mid, f64::total_cmp).1
    }
    .max(1e-12);
    let kern = Kernel::new(d2.iter().map(|v| (-v / med).exp()).collect(), n);
    let mut label: Vec<bool> = (0..n).map(|i| i >= a.rows()).collect();
    let observed = kern.mmd2(&label);
    let mut rng = crate::compat::SplitMix64::new(seed);
    let mut reached = 0usize;
    for _ in 0..permutations {
        for i in (1..n).rev() {
            #[allow(clippy::cast_possible_truncation)]
            let j = (rng.next_u64() % (i as u64 + 1)) as usize;
            label.swap(i, j);
        }
        if kern.mmd2(&label) >= observed {
            reached += 1;
        }
    }
    #[allow(clippy::cast_precision_loss)]
    let p_value = (reached as f64 + 1.0) / (permutations as f64 + 1.0);
    let before = vector_stats(a);
    let after = vector_stats(b);
    let dot: f64 = before
        .mean
        .iter()
        .zip(&after.mean)
        .map(|(x, y)| f64::from(*x) * f64::from(*y))
        .sum();
    let na: f64 = before
        .mean
        .iter()
        .map(|x| f64::from(*x).powi(2))
        .sum::<f64>()
        .sqrt();
    let nb: f64 = after
        .mean
        .iter()
        .map(|x| f64::from(*x).powi(2))
        .sum::<f64>()
        .sqrt();
    let mean_cosine = if na == 0.0 || nb == 0.0 {
        1.0
    } else {
        dot / (na * nb)
    };
    Some(Drift {
        before,
        after,
        mean_cosine,
        mmd2: observed,
        p_value,
        bandwidth: med.sqrt(),
        moved: p_value <= 0.01 && observed > 0.01,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gauss(n: usize, d: usize, shift: f32, seed: u64) -> Vec<f32> {
        let mut r = crate::compat::SplitMix64::new(seed);
        (0..n * d)
            .map(|i| {
                #[allow(clippy::cast_precision_loss)]
                let u = (r.next_u64() % 10_000) as f32 / 10_000.0 - 0.5;
                u + if i % d == 0 { shift } else { 0.0 }
            })
            .collect()
    }

    #[test]
    fn same_distribution_does_not_move_a_shifted_one_does() {
        let a = gauss(150, 8, 0.0, 1);
        let b = gauss(150, 8, 0.0, 2);
        let c = gauss(150, 8, 1.0, 3);
        let (ma, mb, mc) = (
            Matrix::new(&a, 8).unwrap(),
            Matrix::new(&b, 8).unwrap(),
            Matrix::new(&c, 8).unwrap(),
        );
        let same = drift(&ma, &mb, 99, 7).unwrap();
        assert!(!same.moved, "{same:?}");
        let moved = drift(&ma, &mc, 99, 7).unwrap();
        assert!(moved.moved && moved.p_value <= 0.01, "{moved:?}");
        assert!(moved.mmd2 > same.mmd2);
    }

    #[test]
    fn block_sums_equal_the_direct_unbiased_mmd2() {
        let n = 9;
        let k: Vec<f64> = (0..n * n)
            .map(|x| {
                let (i, j) = (x / n, x % n);
                ((i.min(j) * 7 + i.max(j) * 3) % 11) as f64 / 11.0
            })
            .collect();
        let label: Vec<bool> = (0..n).map(|i| i % 3 == 0 || i == 4).collect();
        let (mut saa, mut sbb, mut sab) = (0f64, 0f64, 0f64);
        for i in 0..n {
            for j in 0..n {
                if i == j {
                    continue;
                }
                match (label[i], label[j]) {
                    (false, false) => saa += k[i * n + j],
                    (true, true) => sbb += k[i * n + j],
                    _ => sab += k[i * n + j],
                }
            }
        }
        let nb = label.iter().filter(|l| **l).count() as f64;
        let na = n as f64 - nb;
        let direct = saa / (na * (na - 1.0)) + sbb / (nb * (nb - 1.0)) - sab / (na * nb);
        let fast = Kernel::new(k, n).mmd2(&label);
        assert!((direct - fast).abs() < 1e-12, "{direct} vs {fast}");
    }
}
