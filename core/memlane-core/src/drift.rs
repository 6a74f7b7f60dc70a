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

fn sq_dist(a: &[f32], b: &[f32]) -> f64 {
    a.iter()
        .zip(b)
        .map(|(x, y)| {
            let d = f64::from(*x) - f64::from(*y);
            d * d
        })
        .sum()
}

/// Unbiased MMD² from a pooled kernel matrix and a labelling (`true` = sample b).
fn mmd2_of(k: &[f64], n: usize, label: &[bool]) -> f64 {
    let (mut saa, mut sbb, mut sab) = (0f64, 0f64, 0f64);
    let na = label.iter().filter(|l| !**l).count();
    let nb = n - na;
    for i in 0..n {
        for j in 0..n {
            if i == j {
                continue;
            }
            let v = k[i * n + j];
            match (label[i], label[j]) {
                (false, false) => saa += v,
                (true, true) => sbb += v,
                _ => sab += v,
            }
        }
    }
    #[allow(clippy::cast_precision_loss)]
    let (na, nb) = (na as f64, nb as f64);
    saa / (na * (na - 1.0)) + sbb / (nb * (nb - 1.0)) - sab / (na * nb)
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
    off.sort_by(f64::total_cmp);
    let med = off.get(off.len() / 2).copied().unwrap_or(1.0).max(1e-12);
    let k: Vec<f64> = d2.iter().map(|v| (-v / med).exp()).collect();
    let mut label: Vec<bool> = (0..n).map(|i| i >= a.rows()).collect();
    let observed = mmd2_of(&k, n, &label);
    let mut rng = crate::compat::SplitMix64::new(seed);
    let mut reached = 0usize;
    for _ in 0..permutations {
        for i in (1..n).rev() {
            #[allow(clippy::cast_possible_truncation)]
            let j = (rng.next_u64() % (i as u64 + 1)) as usize;
            label.swap(i, j);
        }
        if mmd2_of(&k, n, &label) >= observed {
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
}
