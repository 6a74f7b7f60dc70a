//! Adapters: maps from the new model's space into the old one, so queries embedded by the
//! new model can search vectors still stored from the old model.
//!
//! Every adapter is affine, `out = x · A + b`, fitted in `f64` and stored in `f32`:
//! - [`AdapterKind::Procrustes`]: `A = s · W` with `W` orthogonal (the smaller dimension
//!   zero-padded), no bias; keeps angles, needs no regularisation.
//! - [`AdapterKind::Ridge`]: closed-form ridge regression with an unpenalised bias.
//! - [`AdapterKind::LowRank`]: the ridge map restricted to its top `r` output directions
//!   (reduced-rank regression), stored as two thin factors, so applying it costs
//!   `r · (d_in + d_out)` instead of `d_in · d_out`.

use std::fmt;

use faer::linalg::matmul::matmul;
use faer::{Accum, Mat, MatMut, MatRef};
use serde::{Deserialize, Serialize};

use super::linalg::{self, count};
use super::{CompatError, Result};

/// Which family an adapter belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AdapterKind {
    /// Scaled orthogonal map.
    Procrustes,
    /// Reduced-rank affine map.
    LowRank,
    /// Full ridge-regularised affine map.
    Ridge,
}

impl AdapterKind {
    /// Every kind, simplest first.
    pub const ALL: [AdapterKind; 3] = [
        AdapterKind::Procrustes,
        AdapterKind::LowRank,
        AdapterKind::Ridge,
    ];

    /// Name as written in reports and files.
    pub fn as_str(self) -> &'static str {
        match self {
            AdapterKind::Procrustes => "procrustes",
            AdapterKind::LowRank => "low_rank",
            AdapterKind::Ridge => "ridge",
        }
    }
}

impl fmt::Display for AdapterKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A fitted map from new-model vectors (`in_dim`) to old-model vectors (`out_dim`).
///
/// Serialises (serde) as one flat record, e.g.
/// `{"kind":"ridge","in_dim":256,"out_dim":384,"normalize_input":true,..,"weights":[..]}`,
/// which self-describing (JSON) and non-self-describing binary formats both handle;
/// deserialising checks that every buffer has the size its dimensions imply.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "AdapterData")]
pub struct Adapter {
    kind: AdapterKind,
    in_dim: usize,
    out_dim: usize,
    /// Inputs are scaled to unit length before the map (fitted on a cosine space).
    normalize_input: bool,
    /// Procrustes: isotropic scale already folded into `weights` (1 otherwise).
    scale: f64,
    /// Ridge penalty (0 for Procrustes).
    lambda: f64,
    /// Rank of the map.
    rank: usize,
    /// Procrustes and ridge: `in_dim x out_dim`; low rank: `rank x in_dim` (left factor,
    /// transposed). Row-major.
    weights: Vec<f32>,
    /// Low rank: `rank x out_dim`, row-major; empty otherwise.
    right: Vec<f32>,
    /// `out_dim` values, or empty (Procrustes).
    bias: Vec<f32>,
}

/// The unchecked wire form of an [`Adapter`].
#[derive(Deserialize)]
struct AdapterData {
    kind: AdapterKind,
    in_dim: usize,
    out_dim: usize,
    normalize_input: bool,
    scale: f64,
    lambda: f64,
    rank: usize,
    weights: Vec<f32>,
    right: Vec<f32>,
    bias: Vec<f32>,
}

impl TryFrom<AdapterData> for Adapter {
    type Error = CompatError;

    fn try_from(d: AdapterData) -> Result<Self> {
        let a = Adapter {
            kind: d.kind,
            in_dim: d.in_dim,
            out_dim: d.out_dim,
            normalize_input: d.normalize_input,
            scale: d.scale,
            lambda: d.lambda,
            rank: d.rank,
            weights: d.weights,
            right: d.right,
            bias: d.bias,
        };
        a.check_well_formed()?;
        Ok(a)
    }
}

impl Adapter {
    fn check_well_formed(&self) -> Result<()> {
        let bad = |message: String| CompatError::Shape {
            what: "adapter".into(),
            message,
        };
        let (i, o, r) = (self.in_dim, self.out_dim, self.rank);
        if i == 0 || o == 0 || r == 0 || r > i.min(o) {
            return Err(bad(format!(
                "dimensions {i} -> {o} with rank {r} are impossible; fit the adapter again"
            )));
        }
        let ok = match self.kind {
            AdapterKind::Procrustes => {
                self.weights.len() == i * o && self.right.is_empty() && self.bias.is_empty()
            }
            AdapterKind::Ridge => {
                self.weights.len() == i * o && self.right.is_empty() && self.bias.len() == o
            }
            AdapterKind::LowRank => {
                self.weights.len() == r * i && self.right.len() == r * o && self.bias.len() == o
            }
        };
        if !ok {
            return Err(bad(format!(
                "buffer sizes do not match a {} map {i} -> {o}; the artifact is truncated or corrupt, fit the adapter again",
                self.kind
            )));
        }
        let finite = self
            .weights
            .iter()
            .chain(&self.right)
            .chain(&self.bias)
            .all(|x| x.is_finite());
        if !finite || !self.scale.is_finite() || !self.lambda.is_finite() {
            return Err(bad(
                "weights contain NaN or infinity; fit the adapter again".into(),
            ));
        }
        Ok(())
    }

    /// The adapter's family.
    pub fn kind(&self) -> AdapterKind {
        self.kind
    }

    /// Dimension of the vectors it takes (the new model's).
    pub fn in_dim(&self) -> usize {
        self.in_dim
    }

    /// Dimension of the vectors it returns (the old model's).
    pub fn out_dim(&self) -> usize {
        self.out_dim
    }

    /// Whether inputs are scaled to unit length first (the fit was on a cosine space).
    pub fn normalizes_input(&self) -> bool {
        self.normalize_input
    }

    /// Ridge penalty used in the fit (0 for Procrustes).
    pub fn lambda(&self) -> f64 {
        self.lambda
    }

    /// Rank of the map (`min(in_dim, out_dim)` unless low-rank).
    pub fn rank(&self) -> usize {
        self.rank
    }

    /// Multiply-adds per applied vector.
    pub fn cost(&self) -> usize {
        match self.kind {
            AdapterKind::LowRank => self.rank * (self.in_dim + self.out_dim),
            _ => self.in_dim * self.out_dim,
        }
    }

    /// A short description, e.g. `ridge (lambda 1.2e-2)` or `low_rank (rank 64, lambda 3e-1)`.
    pub fn describe(&self) -> String {
        match self.kind {
            AdapterKind::Procrustes => format!("procrustes (scale {:.4})", self.scale),
            AdapterKind::Ridge => format!("ridge (lambda {:.3e})", self.lambda),
            AdapterKind::LowRank => {
                format!("low_rank (rank {}, lambda {:.3e})", self.rank, self.lambda)
            }
        }
    }

    /// Map one new-model vector into the old space.
    ///
    /// # Panics
    /// When `new_vec.len() != self.in_dim()`.
    pub fn apply(&self, new_vec: &[f32]) -> Vec<f32> {
        let mut out = vec![0f32; self.out_dim];
        self.apply_into(new_vec, &mut out);
        out
    }

    /// Map one new-model vector into `out` (length `out_dim`) without allocating.
    ///
    /// # Panics
    /// When `new_vec.len() != self.in_dim()` or `out.len() != self.out_dim()`.
    pub fn apply_into(&self, new_vec: &[f32], out: &mut [f32]) {
        assert_eq!(new_vec.len(), self.in_dim, "adapter input dimension");
        assert_eq!(out.len(), self.out_dim, "adapter output dimension");
        // faer's kernels (SIMD chosen at run time) even for one row: several times
        // faster than a plain loop compiled for the baseline target
        let (i, o) = (self.in_dim, self.out_dim);
        let x = MatRef::from_row_major_slice(new_vec, 1, i);
        match self.kind {
            AdapterKind::Procrustes | AdapterKind::Ridge => {
                let w = MatRef::from_row_major_slice(&self.weights, i, o);
                let dst = MatMut::from_row_major_slice_mut(out, 1, o);
                matmul(dst, Accum::Replace, x, w, 1.0f32, faer::Par::Seq);
            }
            AdapterKind::LowRank => {
                let r = self.rank;
                // the rank is small: a stack buffer would do, but ranks are not bounded
                let mut t = vec![0f32; r];
                let l = MatRef::from_row_major_slice(&self.weights, r, i).transpose();
                matmul(
                    MatMut::from_row_major_slice_mut(&mut t, 1, r),
                    Accum::Replace,
                    x,
                    l,
                    1.0f32,
                    faer::Par::Seq,
                );
                let right = MatRef::from_row_major_slice(&self.right, r, o);
                matmul(
                    MatMut::from_row_major_slice_mut(out, 1, o),
                    Accum::Replace,
                    MatRef::from_row_major_slice(&t, 1, r),
                    right,
                    1.0f32,
                    faer::Par::Seq,
                );
            }
        }
        self.finish_row(new_vec, out);
    }

    /// Input scaling (the map is linear, so it can come last) and bias.
    fn finish_row(&self, input: &[f32], out: &mut [f32]) {
        if self.normalize_input {
            let sq: f32 = input.iter().map(|x| x * x).sum();
            if sq > 0.0 {
                let inv = 1.0 / sq.sqrt();
                for y in out.iter_mut() {
                    *y *= inv;
                }
            }
        }
        for (y, b) in out.iter_mut().zip(&self.bias) {
            *y += b;
        }
    }

    /// Map many new-model vectors at once (flat row-major, `rows * in_dim` values) with
    /// matrix products; returns `rows * out_dim` values.
    ///
    /// # Panics
    /// When `rows.len()` is not a multiple of `in_dim`.
    pub fn apply_batch(&self, rows: &[f32]) -> Vec<f32> {
        let (i, o) = (self.in_dim, self.out_dim);
        assert!(rows.len().is_multiple_of(i), "adapter input dimension");
        let n = rows.len() / i;
        let x = MatRef::from_row_major_slice(rows, n, i);
        let par = faer::get_global_parallelism();
        let mut out = vec![0f32; n * o];
        match self.kind {
            AdapterKind::Procrustes | AdapterKind::Ridge => {
                let w = MatRef::from_row_major_slice(&self.weights, i, o);
                let dst = MatMut::from_row_major_slice_mut(&mut out, n, o);
                matmul(dst, Accum::Replace, x, w, 1.0f32, par);
            }
            AdapterKind::LowRank => {
                let r = self.rank;
                let mut t = vec![0f32; n * r];
                let l = MatRef::from_row_major_slice(&self.weights, r, i).transpose();
                let tdst = MatMut::from_row_major_slice_mut(&mut t, n, r);
                matmul(tdst, Accum::Replace, x, l, 1.0f32, par);
                let right = MatRef::from_row_major_slice(&self.right, r, o);
                let tm = MatRef::from_row_major_slice(&t, n, r);
                let dst = MatMut::from_row_major_slice_mut(&mut out, n, o);
                matmul(dst, Accum::Replace, tm, right, 1.0f32, par);
            }
        }
        for (input, row) in rows.chunks_exact(i).zip(out.chunks_exact_mut(o)) {
            self.finish_row(input, row);
        }
        out
    }
}

#[allow(clippy::cast_possible_truncation)]
fn to_f32(m: MatRef<'_, f64>) -> Vec<f32> {
    let mut v = Vec::with_capacity(m.nrows() * m.ncols());
    for r in 0..m.nrows() {
        v.extend(m.row(r).iter().map(|x| *x as f32));
    }
    v
}

#[allow(clippy::cast_possible_truncation)]
fn vec_f32(v: &[f64]) -> Vec<f32> {
    v.iter().map(|x| *x as f32).collect()
}

/// Orthogonal Procrustes of `y` (new, n x di) onto `x` (old, n x do): the `di x do` map `W`
/// with orthonormal columns or rows minimising `||s·Y·W − X||_F`, and that best scale `s`.
///
/// With the smaller side zero-padded to a square problem, the padded solution restricted
/// to the real coordinates is `U Vᵀ` from the thin SVD `YᵀX = U S Vᵀ`.
pub(crate) fn procrustes_map(x: MatRef<'_, f64>, y: MatRef<'_, f64>) -> Result<(Mat<f64>, f64)> {
    let m = linalg::at_b(y, x);
    let (u, s, v) = linalg::svd(m.as_ref(), "SVD of the Procrustes cross-covariance")?;
    let w = linalg::a_b(u.as_ref(), v.as_ref().transpose());
    let yw = linalg::frob(linalg::a_b(y, w.as_ref()).as_ref());
    let scale = if yw > 0.0 {
        s.iter().sum::<f64>() / (yw * yw)
    } else {
        1.0
    };
    Ok((w, scale))
}

/// Fit a Procrustes adapter of `y` (new) onto `x` (old), rows optionally weighted.
pub(crate) fn fit_procrustes(
    x: MatRef<'_, f64>,
    y: MatRef<'_, f64>,
    w: Option<&[f64]>,
    normalize_input: bool,
) -> Result<Adapter> {
    let (mut xs, mut ys) = (x.to_owned(), y.to_owned());
    if let Some(w) = w {
        linalg::weight_rows(&mut xs, w);
        linalg::weight_rows(&mut ys, w);
    }
    let (map, scale) = procrustes_map(xs.as_ref(), ys.as_ref())?;
    let weights = to_f32((map * faer::Scale(scale)).as_ref());
    let a = Adapter {
        kind: AdapterKind::Procrustes,
        in_dim: y.ncols(),
        out_dim: x.ncols(),
        normalize_input,
        scale,
        lambda: 0.0,
        rank: y.ncols().min(x.ncols()),
        weights,
        right: Vec::new(),
        bias: Vec::new(),
    };
    a.check_well_formed()?;
    Ok(a)
}

/// The pieces of a ridge fit shared by every penalty: the centred, weighted Gram matrix of
/// the inputs in its eigenbasis, and the cross-covariance in that basis.
pub(crate) struct RidgeProblem {
    mean_x: Vec<f64>,
    mean_y: Vec<f64>,
    /// Eigenvalues of `YcᵀYc`, ascending.
    eig: Vec<f64>,
    /// Eigenvectors of `YcᵀYc` (di x di).
    q: Mat<f64>,
    /// `Qᵀ YcᵀXc` (di x do).
    p: Mat<f64>,
    /// Gram matrix `YcᵀYc` (di x di).
    gram: Mat<f64>,
    rows: usize,
    normalize_input: bool,
}

impl RidgeProblem {
    /// Centre (weighted) and decompose once.
    pub(crate) fn new(
        x: MatRef<'_, f64>,
        y: MatRef<'_, f64>,
        w: Option<&[f64]>,
        normalize_input: bool,
    ) -> Result<Self> {
        let (mean_x, mut xc) = linalg::center(&x.to_owned(), w);
        let (mean_y, mut yc) = linalg::center(&y.to_owned(), w);
        if let Some(w) = w {
            linalg::weight_rows(&mut xc, w);
            linalg::weight_rows(&mut yc, w);
        }
        let gram = linalg::at_b(yc.as_ref(), yc.as_ref());
        let (eig, q) = linalg::sym_eigen(
            gram.as_ref(),
            "eigen-decomposition of the input Gram matrix",
        )?;
        let c = linalg::at_b(yc.as_ref(), xc.as_ref());
        let p = linalg::at_b(q.as_ref(), c.as_ref());
        Ok(RidgeProblem {
            mean_x,
            mean_y,
            eig,
            q,
            p,
            gram,
            rows: x.nrows(),
            normalize_input,
        })
    }

    /// Average eigenvalue of the Gram matrix: the scale relative penalties refer to.
    pub(crate) fn scale(&self) -> f64 {
        let s = self.eig.iter().map(|e| e.max(0.0)).sum::<f64>() / count(self.eig.len().max(1));
        if s > 0.0 { s } else { 1.0 }
    }

    /// `A = (YcᵀYc + λI)⁻¹ YcᵀXc` (di x do). `λ = 0` is refused when the sample is too small
    /// for an unregularised fit, and solved by pseudo-inverse otherwise.
    pub(crate) fn weights(&self, lambda: f64) -> Result<Mat<f64>> {
        let (di, d_out) = (self.q.nrows(), self.p.ncols());
        if lambda <= 0.0 {
            let needed = 2 * di.max(d_out) + 1;
            if self.rows < needed {
                return Err(CompatError::Unregularized {
                    rows: self.rows,
                    d_in: di,
                    d_out,
                    needed,
                });
            }
        }
        let top = self.eig.iter().copied().fold(0.0f64, f64::max);
        let mut scaled = self.p.clone();
        for (r, e) in self.eig.iter().enumerate() {
            let denom = e + lambda;
            let inv = if denom > 1e-12 * top.max(1e-300) {
                1.0 / denom
            } else {
                0.0
            };
            for c in 0..d_out {
                scaled[(r, c)] *= inv;
            }
        }
        Ok(linalg::a_b(self.q.as_ref(), scaled.as_ref()))
    }

    fn bias(&self, a: MatRef<'_, f64>) -> Vec<f64> {
        (0..a.ncols())
            .map(|c| {
                self.mean_x[c]
                    - (0..a.nrows())
                        .map(|r| self.mean_y[r] * a[(r, c)])
                        .sum::<f64>()
            })
            .collect()
    }

    /// The ridge adapter for penalty `lambda`.
    pub(crate) fn ridge(&self, lambda: f64) -> Result<Adapter> {
        let a = self.weights(lambda)?;
        let bias = vec_f32(&self.bias(a.as_ref()));
        let ad = Adapter {
            kind: AdapterKind::Ridge,
            in_dim: a.nrows(),
            out_dim: a.ncols(),
            normalize_input: self.normalize_input,
            scale: 1.0,
            lambda,
            rank: a.nrows().min(a.ncols()),
            weights: to_f32(a.as_ref()),
            right: Vec::new(),
            bias,
        };
        ad.check_well_formed()?;
        Ok(ad)
    }

    /// The ridge map for `lambda` restricted to the `rank` output directions that carry the
    /// most fitted variance (eigenvectors of `AᵀGA`): reduced-rank ridge regression.
    pub(crate) fn low_rank(&self, lambda: f64, rank: usize) -> Result<Adapter> {
        let a = self.weights(lambda)?;
        let d_out = a.ncols();
        let rank = rank.clamp(1, d_out.min(a.nrows()));
        let ga = linalg::a_b(self.gram.as_ref(), a.as_ref());
        let fitted = linalg::at_b(a.as_ref(), ga.as_ref());
        let (_, v) = linalg::sym_eigen(
            fitted.as_ref(),
            "eigen-decomposition of the fitted covariance",
        )?;
        // Eigenvalues ascend: the top `rank` directions are the last columns.
        let vr = v.as_ref().subcols(d_out - rank, rank).to_owned();
        let left = linalg::a_b(a.as_ref(), vr.as_ref());
        let a_r = linalg::a_b(left.as_ref(), vr.as_ref().transpose());
        let bias = vec_f32(&self.bias(a_r.as_ref()));
        let ad = Adapter {
            kind: AdapterKind::LowRank,
            in_dim: a.nrows(),
            out_dim: d_out,
            normalize_input: self.normalize_input,
            scale: 1.0,
            lambda,
            rank,
            weights: to_f32(left.as_ref().transpose()),
            right: to_f32(vr.as_ref().transpose()),
            bias,
        };
        ad.check_well_formed()?;
        Ok(ad)
    }
}

/// Fit a ridge adapter from new-model rows `new` (n x `new_dim`) to old-model rows `old`
/// (n x `old_dim`), both flat row-major `f32`, with penalty `lambda` on the centred inputs.
///
/// `lambda = 0` is an unregularised affine fit: it is refused with
/// [`CompatError::Unregularized`] when `n < 2 * max(new_dim, old_dim) + 1`, where it would
/// memorise the sample.
pub fn fit_ridge(old: &super::Matrix<'_>, new: &super::Matrix<'_>, lambda: f64) -> Result<Adapter> {
    super::check_paired(old, new)?;
    let x = linalg::to_f64(old, None, false);
    let y = linalg::to_f64(new, None, false);
    RidgeProblem::new(x.as_ref(), y.as_ref(), None, false)?.ridge(lambda)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compat::{Matrix, testdata};

    #[test]
    fn apply_matches_batch_and_hand_computed() {
        // 2 -> 3 ridge with weights [[1,0,2],[0,1,-1]] and bias [0.5, 0, 0].
        let a = Adapter {
            kind: AdapterKind::Ridge,
            in_dim: 2,
            out_dim: 3,
            normalize_input: false,
            scale: 1.0,
            lambda: 0.1,
            rank: 2,
            weights: vec![1.0, 0.0, 2.0, 0.0, 1.0, -1.0],
            right: vec![],
            bias: vec![0.5, 0.0, 0.0],
        };
        a.check_well_formed().unwrap();
        assert_eq!(a.apply(&[2.0, 3.0]), vec![2.5, 3.0, 1.0]);
        assert_eq!(
            a.apply_batch(&[2.0, 3.0, 1.0, 0.0]),
            vec![2.5, 3.0, 1.0, 1.5, 0.0, 2.0]
        );
        assert_eq!(
            (a.kind(), a.in_dim(), a.out_dim(), a.cost()),
            (AdapterKind::Ridge, 2, 3, 6)
        );
        // Normalised input: [3, 4] acts as [0.6, 0.8].
        let mut an = a.clone();
        an.normalize_input = true;
        let got = an.apply(&[3.0, 4.0]);
        let want = [1.1f32, 0.8, 0.4];
        assert!(
            got.iter().zip(want).all(|(g, w)| (g - w).abs() < 1e-6),
            "{got:?}"
        );
        assert_eq!(an.apply_batch(&[3.0, 4.0]), got);
        // Rank-1 factors of the same shape: left [1, 1], right [1, 2, 3].
        let l = Adapter {
            kind: AdapterKind::LowRank,
            rank: 1,
            weights: vec![1.0, 1.0],
            right: vec![1.0, 2.0, 3.0],
            bias: vec![0.0, 0.0, 1.0],
            ..a.clone()
        };
        l.check_well_formed().unwrap();
        assert_eq!(l.apply(&[2.0, 3.0]), vec![5.0, 10.0, 16.0]);
        assert_eq!(l.apply_batch(&[2.0, 3.0]), vec![5.0, 10.0, 16.0]);
        assert_eq!(l.cost(), 5);
    }

    #[test]
    fn serde_round_trip_and_validation() {
        let data = testdata::latent(60, 6, 6, 0.0, 1);
        let proj = testdata::gaussian(6, 4, 2);
        let new = testdata::times(&data, 6, &proj, 4);
        let (o, n) = (
            Matrix::new(&data, 6).unwrap(),
            Matrix::new(&new, 4).unwrap(),
        );
        let a = fit_ridge(&o, &n, 0.5).unwrap();
        let json = serde_json::to_string(&a).unwrap();
        assert!(json.starts_with("{\"kind\":\"ridge\""), "{json}");
        let back: Adapter = serde_json::from_str(&json).unwrap();
        assert_eq!(back, a);
        assert_eq!(back.apply(n.row(3)), a.apply(n.row(3)));
        // A truncated artifact is refused with a fix.
        let mut v: serde_json::Value = serde_json::from_str(&json).unwrap();
        v["weights"].as_array_mut().unwrap().pop();
        let e = serde_json::from_value::<Adapter>(v)
            .unwrap_err()
            .to_string();
        assert!(e.contains("fit the adapter again"), "{e}");
    }

    #[test]
    fn unregularised_fit_refused_on_small_samples() {
        let data = testdata::latent(16, 8, 8, 0.1, 3);
        let new = testdata::times(&data, 8, &testdata::gaussian(8, 5, 4), 5);
        let (o, n) = (
            Matrix::new(&data, 8).unwrap(),
            Matrix::new(&new, 5).unwrap(),
        );
        let e = fit_ridge(&o, &n, 0.0).unwrap_err();
        assert_eq!(
            e,
            CompatError::Unregularized {
                rows: 16,
                d_in: 5,
                d_out: 8,
                needed: 17, // 2 * 8 + 1
            }
        );
        assert!(e.to_string().contains("lambda > 0"));
        // With a penalty, or with enough rows, it fits.
        assert!(fit_ridge(&o, &n, 0.1).is_ok());
        let big = testdata::latent(40, 8, 8, 0.1, 3);
        let bign = testdata::times(&big, 8, &testdata::gaussian(8, 5, 4), 5);
        let a = fit_ridge(
            &Matrix::new(&big, 8).unwrap(),
            &Matrix::new(&bign, 5).unwrap(),
            0.0,
        );
        assert!(a.is_ok());
    }

    #[test]
    fn exact_affine_map_is_recovered() {
        // new = old · M + c with M invertible: ridge with a tiny penalty inverts it.
        let d = 5;
        let data = testdata::latent(80, d, d, 0.0, 7);
        let m = testdata::gaussian(d, d, 8);
        let mut new = testdata::times(&data, d, &m, d);
        for row in new.chunks_exact_mut(d) {
            row[0] += 3.0;
        }
        let (o, n) = (
            Matrix::new(&data, d).unwrap(),
            Matrix::new(&new, d).unwrap(),
        );
        let a = fit_ridge(&o, &n, 1e-9).unwrap();
        for i in [0, 17, 79] {
            let got = a.apply(n.row(i));
            for (g, w) in got.iter().zip(o.row(i)) {
                assert!((g - w).abs() < 1e-3, "{got:?} vs {:?}", o.row(i));
            }
        }
        // Low rank at full rank equals ridge; at rank 2 it loses information.
        let x = linalg::to_f64(&o, None, false);
        let y = linalg::to_f64(&n, None, false);
        let p = RidgeProblem::new(x.as_ref(), y.as_ref(), None, false).unwrap();
        let full = p.low_rank(1e-9, d).unwrap();
        let got = full.apply(n.row(5));
        assert!(got.iter().zip(o.row(5)).all(|(g, w)| (g - w).abs() < 1e-3));
        let r2 = p.low_rank(1e-9, 2).unwrap();
        assert_eq!((r2.rank(), r2.cost()), (2, 2 * (d + d)));
    }
}
