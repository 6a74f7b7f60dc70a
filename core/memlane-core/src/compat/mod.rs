//! Compatibility of two embedding spaces over the same records.
//!
//! When a model is upgraded, memlane embeds a sample of records with both models and asks:
//! do the two spaces agree on who is near whom, can a cheap adapter map new vectors into
//! the old space, and do the declared gates pass? Everything here is pure computation on
//! row-major `f32` buffers (no IO), so the store, the CLI and the browser preview run the
//! same code.
//!
//! - [`knn()`] / [`knn_queries`]: exact k-nearest neighbours by blocked matrix products.
//! - [`ann`] / [`neighbours`]: exact up to [`EXACT_UP_TO`] rows, an HNSW graph (hnsw_rs)
//!   above, with the graph's own recall against exact search measured and reported.
//! - [`metrics`]: neighbourhood overlap, recall, retrieval ratio, CKA, Procrustes, norms,
//!   each paired with a shuffled-pairing baseline where one makes sense.
//! - [`adapter`] / [`fit_adapters`]: Procrustes, ridge and low-rank affine maps from the new
//!   space into the old, chosen on a held-out split.
//! - [`gate`]: thresholds on reported metrics and the verdict they give.
//! - [`comparison`]: [`compat()`] gathers all of it into a [`CompatReport`].
//!
//! Neighbour search uses `f32` (speed); fits use `f64` (accuracy). Matrix products run on
//! faer; with memlane-core's `parallel` feature faer uses rayon's global pool.

pub mod adapter;
pub mod ann;
pub mod comparison;
pub mod fit;
pub mod gate;
pub mod knn;
mod linalg;
pub mod metrics;

pub use crate::error::CompatError;
pub use adapter::fit_ridge;
pub use adapter::{Adapter, AdapterKind};
pub use ann::{Approximation, EXACT_UP_TO, HnswParams, KnnPolicy, neighbours};
pub use comparison::{
    CompatMode, CompatOptions, CompatReport, ModeThresholds, QuerySet, RetrievalSummary,
    adapter_metric_names, check_fingerprint, compat, fingerprint_deviation, verify_mode,
};
pub use fit::{
    CandidateResult, EvalSource, FitOptions, FitReport, QueryPairs, fit_adapters, min_sample_rows,
};
pub use gate::{Gate, GateResult, Verdict, evaluate, evaluate_with, overall, parse_gates};
pub use knn::{Neighbors, knn, knn_queries};
pub use metrics::{
    Distribution, Histogram, NormStats, PairedScore, Procrustes, cka, neighborhood_scores,
    norm_stats, paired_cosine, procrustes, project_2d, retrieval_recall,
};

/// Result alias of this module.
pub type Result<T, E = CompatError> = std::result::Result<T, E>;

/// Default cosine a fingerprint or an `identical` declaration must reach.
pub const DEFAULT_TOLERANCE: f64 = 0.999;

/// A borrowed row-major matrix of `rows` vectors of dimension `dim`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Matrix<'a> {
    data: &'a [f32],
    rows: usize,
    dim: usize,
}

impl<'a> Matrix<'a> {
    /// View `data` as `data.len() / dim` rows of `dim` values.
    ///
    /// Fails when `dim` is zero, the length is not a multiple of `dim`, or a value is
    /// NaN or infinite (one bad value would poison every product it enters).
    pub fn new(data: &'a [f32], dim: usize) -> Result<Self> {
        if dim == 0 {
            return Err(CompatError::Shape {
                what: "matrix".into(),
                message: "dimension 0; pass the embedding dimension".into(),
            });
        }
        if !data.len().is_multiple_of(dim) {
            return Err(CompatError::Shape {
                what: "matrix".into(),
                message: format!(
                    "{} values are not whole rows of dimension {dim}; pass a flat row-major buffer of n * {dim} values",
                    data.len()
                ),
            });
        }
        if let Some(i) = data.iter().position(|x| !x.is_finite()) {
            return Err(CompatError::NonFinite {
                row: i / dim,
                col: i % dim,
            });
        }
        Ok(Matrix {
            data,
            rows: data.len() / dim,
            dim,
        })
    }

    /// The flat row-major values.
    pub fn data(&self) -> &'a [f32] {
        self.data
    }

    /// Number of rows (vectors).
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Dimension (values per row).
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// Row `i` (panics when out of range).
    pub fn row(&self, i: usize) -> &'a [f32] {
        &self.data[i * self.dim..(i + 1) * self.dim]
    }

    /// Iterate over rows.
    pub fn iter_rows(&self) -> std::slice::ChunksExact<'a, f32> {
        self.data.chunks_exact(self.dim)
    }
}

/// Check that `old` and `new` pair row for row.
pub(crate) fn check_paired(old: &Matrix<'_>, new: &Matrix<'_>) -> Result<()> {
    if old.rows() != new.rows() {
        return Err(CompatError::Shape {
            what: "paired sample".into(),
            message: format!(
                "old has {} rows but new has {}; embed the same records, in the same order, with both models",
                old.rows(),
                new.rows()
            ),
        });
    }
    Ok(())
}

/// A tiny deterministic PRNG (splitmix64): the same seed gives the same shuffles on every
/// platform, wasm included.
#[derive(Debug, Clone)]
pub(crate) struct SplitMix64(u64);

impl SplitMix64 {
    pub(crate) fn new(seed: u64) -> Self {
        SplitMix64(seed)
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (n > 0), by Lemire's multiply-shift (bias below 2^-32 for n < 2^32).
    #[allow(clippy::cast_possible_truncation)]
    pub(crate) fn below(&mut self, n: usize) -> usize {
        ((u128::from(self.next_u64()) * n as u128) >> 64) as usize
    }

    /// Uniform in `[0, 1)`.
    #[cfg(test)]
    #[allow(clippy::cast_precision_loss)]
    pub(crate) fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Standard normal (Box–Muller).
    #[cfg(test)]
    pub(crate) fn normal(&mut self) -> f64 {
        let u1 = 1.0 - self.unit();
        let u2 = self.unit();
        (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
    }

    /// A uniformly random permutation of `0..n` (Fisher–Yates).
    pub(crate) fn permutation(&mut self, n: usize) -> Vec<usize> {
        let mut p: Vec<usize> = (0..n).collect();
        for i in (1..n).rev() {
            let j = self.below(i + 1);
            p.swap(i, j);
        }
        p
    }

    /// A random permutation of `0..n` with no fixed point (n >= 2), by Sattolo's algorithm:
    /// a shuffled pairing never pairs a record with itself.
    pub(crate) fn derangement(&mut self, n: usize) -> Vec<usize> {
        let mut p: Vec<usize> = (0..n).collect();
        for i in (1..n).rev() {
            let j = self.below(i);
            p.swap(i, j);
        }
        p
    }
}

#[cfg(test)]
pub(crate) mod testdata {
    //! Synthetic spaces for the tests of this module.
    use super::SplitMix64;

    /// `n` rows of dimension `d` with `rank` latent factors plus a little noise.
    #[allow(clippy::cast_possible_truncation)]
    pub(crate) fn latent(n: usize, d: usize, rank: usize, noise: f64, seed: u64) -> Vec<f32> {
        let mut rng = SplitMix64::new(seed);
        let z: Vec<f64> = (0..n * rank).map(|_| rng.normal()).collect();
        let w: Vec<f64> = (0..rank * d).map(|_| rng.normal()).collect();
        let mut out = vec![0f32; n * d];
        for i in 0..n {
            for j in 0..d {
                let mut s = 0.0;
                for r in 0..rank {
                    s += z[i * rank + r] * w[r * d + j];
                }
                out[i * d + j] = (s + noise * rng.normal()) as f32;
            }
        }
        out
    }

    /// A random orthogonal `d x d` matrix (Gram–Schmidt of Gaussian rows), row-major f64.
    pub(crate) fn rotation(d: usize, seed: u64) -> Vec<f64> {
        let mut rng = SplitMix64::new(seed);
        let mut q: Vec<f64> = (0..d * d).map(|_| rng.normal()).collect();
        for i in 0..d {
            for j in 0..i {
                let dot: f64 = (0..d).map(|c| q[i * d + c] * q[j * d + c]).sum();
                for c in 0..d {
                    q[i * d + c] -= dot * q[j * d + c];
                }
            }
            let norm: f64 = (0..d)
                .map(|c| q[i * d + c] * q[i * d + c])
                .sum::<f64>()
                .sqrt();
            for c in 0..d {
                q[i * d + c] /= norm;
            }
        }
        q
    }

    /// `x` (n x d_in, f32) times `m` (d_in x d_out, f64), row-major.
    #[allow(clippy::cast_possible_truncation)]
    pub(crate) fn times(x: &[f32], d_in: usize, m: &[f64], d_out: usize) -> Vec<f32> {
        let n = x.len() / d_in;
        let mut out = vec![0f32; n * d_out];
        for i in 0..n {
            for j in 0..d_out {
                let mut s = 0.0;
                for c in 0..d_in {
                    s += f64::from(x[i * d_in + c]) * m[c * d_out + j];
                }
                out[i * d_out + j] = s as f32;
            }
        }
        out
    }

    /// A cross-family-like pair: `n` old rows of dimension `d_old` with `rank` latent
    /// factors, and new rows of dimension `d_new` that are a random, badly conditioned
    /// linear map of them plus Gaussian noise of relative size `noise`. Returns `(old, new)`.
    #[allow(clippy::cast_possible_truncation)]
    pub(crate) fn cross_family(
        n: usize,
        (d_old, d_new, rank): (usize, usize, usize),
        noise: f64,
        seed: u64,
    ) -> (Vec<f32>, Vec<f32>) {
        let old = latent(n, d_old, rank, 0.02, seed);
        // far from orthogonal: input directions scaled over two orders of magnitude
        let mut map = gaussian(d_old, d_new, seed + 1);
        for (c, row) in map.chunks_exact_mut(d_new).enumerate() {
            #[allow(clippy::cast_precision_loss)]
            let s = 10f64.powf(2.0 * c as f64 / d_old as f64 - 1.0);
            row.iter_mut().for_each(|x| *x *= s);
        }
        let mut new = times(&old, d_old, &map, d_new);
        let mut rng = SplitMix64::new(seed + 2);
        #[allow(clippy::cast_precision_loss)]
        let rms =
            (new.iter().map(|x| f64::from(*x).powi(2)).sum::<f64>() / new.len() as f64).sqrt();
        let scale = noise * rms;
        for x in &mut new {
            *x += (scale * rng.normal()) as f32;
        }
        (old, new)
    }

    /// A Gaussian `d_in x d_out` matrix scaled by `1/sqrt(d_out)`.
    #[allow(clippy::cast_precision_loss)]
    pub(crate) fn gaussian(d_in: usize, d_out: usize, seed: u64) -> Vec<f64> {
        let mut rng = SplitMix64::new(seed);
        let s = 1.0 / (d_out as f64).sqrt();
        (0..d_in * d_out).map(|_| rng.normal() * s).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matrix_validates_shape_and_values() {
        let m = Matrix::new(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0], 3).unwrap();
        assert_eq!((m.rows(), m.dim()), (2, 3));
        assert_eq!(m.row(1), &[4.0, 5.0, 6.0]);
        assert!(
            Matrix::new(&[1.0; 5], 2)
                .unwrap_err()
                .to_string()
                .contains("dimension 2")
        );
        assert!(Matrix::new(&[1.0; 4], 0).is_err());
        let e = Matrix::new(&[1.0, f32::NAN, 0.0, 0.0], 2).unwrap_err();
        assert_eq!(e, CompatError::NonFinite { row: 0, col: 1 });
    }

    #[test]
    fn splitmix_is_deterministic_and_shuffles() {
        // First output of splitmix64 seeded with 0 (reference value of the algorithm).
        assert_eq!(SplitMix64::new(0).next_u64(), 0xE220_A839_7B1D_CDAF);
        let p = SplitMix64::new(7).permutation(100);
        let mut s = p.clone();
        s.sort_unstable();
        assert_eq!(s, (0..100).collect::<Vec<_>>());
        assert_eq!(p, SplitMix64::new(7).permutation(100));
        let d = SplitMix64::new(3).derangement(50);
        assert!(d.iter().enumerate().all(|(i, &j)| i != j));
    }
}
