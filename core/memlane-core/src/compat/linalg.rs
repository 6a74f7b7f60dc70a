//! Small `f64` helpers over faer shared by the metrics and the adapter fits.

use faer::linalg::matmul::matmul;
use faer::{Accum, Mat, MatRef, Side};

use super::{CompatError, Matrix, Result};

/// Rows of `m` (all, or those in `rows`) as an `f64` matrix, each scaled to unit length
/// when `normalize` is set.
pub(crate) fn to_f64(m: &Matrix<'_>, rows: Option<&[usize]>, normalize: bool) -> Mat<f64> {
    let idx: Vec<usize> = rows.map_or_else(|| (0..m.rows()).collect(), <[usize]>::to_vec);
    let mut out = Mat::<f64>::zeros(idx.len(), m.dim());
    for (r, &i) in idx.iter().enumerate() {
        let row = m.row(i);
        let scale = if normalize {
            let n = row
                .iter()
                .map(|x| f64::from(*x).powi(2))
                .sum::<f64>()
                .sqrt();
            if n > 0.0 { 1.0 / n } else { 0.0 }
        } else {
            1.0
        };
        for (c, x) in row.iter().enumerate() {
            out[(r, c)] = f64::from(*x) * scale;
        }
    }
    out
}

/// Column means (weighted when `w` is given) and the centred copy.
pub(crate) fn center(x: &Mat<f64>, w: Option<&[f64]>) -> (Vec<f64>, Mat<f64>) {
    let (n, d) = x.shape();
    let total: f64 = w.map_or_else(|| count(n), |w| w.iter().sum());
    let mut mean = vec![0.0; d];
    for r in 0..n {
        let wr = w.map_or(1.0, |w| w[r]);
        for (c, m) in mean.iter_mut().enumerate() {
            *m += wr * x[(r, c)];
        }
    }
    if total > 0.0 {
        for m in &mut mean {
            *m /= total;
        }
    }
    let centred = Mat::from_fn(n, d, |r, c| x[(r, c)] - mean[c]);
    (mean, centred)
}

/// Scale row `r` by `sqrt(w[r])` in place (weighted least squares as ordinary).
pub(crate) fn weight_rows(x: &mut Mat<f64>, w: &[f64]) {
    for (r, wr) in w.iter().enumerate() {
        let s = wr.sqrt();
        for c in 0..x.ncols() {
            x[(r, c)] *= s;
        }
    }
}

/// `a^T b` (a: n x p, b: n x q) -> p x q.
#[cfg(not(target_arch = "wasm32"))]
pub(crate) fn at_b(a: MatRef<'_, f64>, b: MatRef<'_, f64>) -> Mat<f64> {
    let mut out = Mat::<f64>::zeros(a.ncols(), b.ncols());
    matmul(
        out.as_mut(),
        Accum::Replace,
        a.transpose(),
        b,
        1.0,
        faer::get_global_parallelism(),
    );
    out
}

/// `a^T b` in wasm32, where faer's `gemm` has only a scalar micro-kernel: the columns
/// copied contiguous, then 4 x 4 column dot products at a time over 2-lane chunks (LLVM
/// turns the lane loops into simd128 `f64x2` multiplies and adds).
#[cfg(target_arch = "wasm32")]
pub(crate) fn at_b(a: MatRef<'_, f64>, b: MatRef<'_, f64>) -> Mat<f64> {
    let (n, p, q) = (a.nrows(), a.ncols(), b.ncols());
    let cols = |m: MatRef<'_, f64>| -> Vec<f64> {
        let mut v = Vec::with_capacity(m.nrows() * m.ncols());
        for j in 0..m.ncols() {
            v.extend(m.col(j).iter().copied());
        }
        v
    };
    let (ac, bc) = (cols(a), cols(b));
    let mut out = Mat::<f64>::zeros(p, q);
    let whole = n - n % 2;
    let mut i = 0;
    while i < p {
        let ni = (p - i).min(4);
        let mut j = 0;
        while j < q {
            let nj = (q - j).min(4);
            let mut acc = [[[0f64; 2]; 4]; 4];
            let mut r = 0;
            while r < whole {
                for (x, acc_x) in acc.iter_mut().enumerate().take(ni) {
                    let av = [ac[(i + x) * n + r], ac[(i + x) * n + r + 1]];
                    for (y, acc_xy) in acc_x.iter_mut().enumerate().take(nj) {
                        let bv = [bc[(j + y) * n + r], bc[(j + y) * n + r + 1]];
                        for l in 0..2 {
                            acc_xy[l] += av[l] * bv[l];
                        }
                    }
                }
                r += 2;
            }
            for x in 0..ni {
                for y in 0..nj {
                    let mut s = acc[x][y][0] + acc[x][y][1];
                    for t in whole..n {
                        s += ac[(i + x) * n + t] * bc[(j + y) * n + t];
                    }
                    out[(i + x, j + y)] = s;
                }
            }
            j += nj;
        }
        i += ni;
    }
    out
}

/// `a b` (a: n x p, b: p x q) -> n x q.
pub(crate) fn a_b(a: MatRef<'_, f64>, b: MatRef<'_, f64>) -> Mat<f64> {
    let mut out = Mat::<f64>::zeros(a.nrows(), b.ncols());
    matmul(
        out.as_mut(),
        Accum::Replace,
        a,
        b,
        1.0,
        faer::get_global_parallelism(),
    );
    out
}

/// Frobenius norm.
pub(crate) fn frob(a: MatRef<'_, f64>) -> f64 {
    a.norm_l2()
}

/// Thin SVD `a = U S V^T`: returns `(U, s, V)`.
pub(crate) fn svd(a: MatRef<'_, f64>, what: &str) -> Result<(Mat<f64>, Vec<f64>, Mat<f64>)> {
    let s = a
        .thin_svd()
        .map_err(|_| CompatError::Linalg { what: what.into() })?;
    let sv: Vec<f64> = s.S().column_vector().iter().copied().collect();
    Ok((s.U().to_owned(), sv, s.V().to_owned()))
}

/// Eigen-decomposition of a symmetric matrix: `(eigenvalues ascending, eigenvectors)`.
pub(crate) fn sym_eigen(a: MatRef<'_, f64>, what: &str) -> Result<(Vec<f64>, Mat<f64>)> {
    let e = a
        .self_adjoint_eigen(Side::Lower)
        .map_err(|_| CompatError::Linalg { what: what.into() })?;
    let vals: Vec<f64> = e.S().column_vector().iter().copied().collect();
    Ok((vals, e.U().to_owned()))
}

/// `n` as `f64`.
#[allow(clippy::cast_precision_loss)]
pub(crate) fn count(n: usize) -> f64 {
    n as f64
}

/// Cosine of two `f64` slices (0 when either is zero).
pub(crate) fn cosine(a: &[f64], b: &[f64]) -> f64 {
    let dot: f64 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let na: f64 = a.iter().map(|x| x * x).sum::<f64>().sqrt();
    let nb: f64 = b.iter().map(|x| x * x).sum::<f64>().sqrt();
    if na == 0.0 || nb == 0.0 {
        0.0
    } else {
        dot / (na * nb)
    }
}
