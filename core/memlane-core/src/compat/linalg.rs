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
/// turns the lane loops into simd128 `f64x2` multiplies and adds), in row tiles that
/// keep the eight columns of a block in cache.
#[cfg(target_arch = "wasm32")]
pub(crate) fn at_b(a: MatRef<'_, f64>, b: MatRef<'_, f64>) -> Mat<f64> {
    /// Rows per tile (8 columns x 512 x 8 B = 32 KiB).
    const TILE: usize = 512;
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
    let mut r0 = 0;
    while r0 < n {
        let r1 = (r0 + TILE).min(n);
        let span = (r0, r1, n);
        let mut i = 0;
        while i < p {
            let ni = (p - i).min(4);
            let mut j = 0;
            while j < q {
                let nj = (q - j).min(4);
                if ni == 4 && nj == 4 {
                    let x = [
                        tile(&ac, i, span),
                        tile(&ac, i + 1, span),
                        tile(&ac, i + 2, span),
                        tile(&ac, i + 3, span),
                    ];
                    let y = [
                        tile(&bc, j, span),
                        tile(&bc, j + 1, span),
                        tile(&bc, j + 2, span),
                        tile(&bc, j + 3, span),
                    ];
                    let d = dot4x4_f64(x, y);
                    for (u, row) in d.iter().enumerate() {
                        for (v, val) in row.iter().enumerate() {
                            out[(i + u, j + v)] += val;
                        }
                    }
                } else {
                    for u in i..i + ni {
                        for v in j..j + nj {
                            let d: f64 = tile(&ac, u, span)
                                .iter()
                                .zip(tile(&bc, v, span))
                                .map(|(s, t)| s * t)
                                .sum();
                            out[(u, v)] += d;
                        }
                    }
                }
                j += nj;
            }
            i += ni;
        }
        r0 = r1;
    }
    out
}

/// Rows `r0..r1` of column `c` of a contiguous column-major matrix with `n` rows.
#[cfg(target_arch = "wasm32")]
fn tile(m: &[f64], c: usize, (r0, r1, n): (usize, usize, usize)) -> &[f64] {
    &m[c * n + r0..c * n + r1]
}

/// Sixteen dot products of four equal-length columns with four, two lanes at a time.
#[cfg(target_arch = "wasm32")]
fn dot4x4_f64(x: [&[f64]; 4], y: [&[f64]; 4]) -> [[f64; 4]; 4] {
    let len = x[0].len();
    let whole = len - len % 2;
    let mut acc = [[[0f64; 2]; 4]; 4];
    let mut o = 0;
    while o < whole {
        let xa = [
            [x[0][o], x[0][o + 1]],
            [x[1][o], x[1][o + 1]],
            [x[2][o], x[2][o + 1]],
            [x[3][o], x[3][o + 1]],
        ];
        let ya = [
            [y[0][o], y[0][o + 1]],
            [y[1][o], y[1][o + 1]],
            [y[2][o], y[2][o + 1]],
            [y[3][o], y[3][o + 1]],
        ];
        for (acc_u, xu) in acc.iter_mut().zip(&xa) {
            for (acc_uv, yv) in acc_u.iter_mut().zip(&ya) {
                for l in 0..2 {
                    acc_uv[l] += xu[l] * yv[l];
                }
            }
        }
        o += 2;
    }
    let mut out = [[0f64; 4]; 4];
    for u in 0..4 {
        for v in 0..4 {
            let mut s = acc[u][v][0] + acc[u][v][1];
            for t in whole..len {
                s += x[u][t] * y[v][t];
            }
            out[u][v] = s;
        }
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
