//! Exact k-nearest neighbours by blocked matrix products.
//!
//! Scores of a block of query rows against every base row come from one `f32` matrix
//! product (faer); each row's best `k` are then picked by a streaming selection that skips
//! whole chunks whose maximum cannot enter the current top `k`. Buffers are allocated once
//! per call, never per row.

#[cfg(not(target_arch = "wasm32"))]
use faer::linalg::matmul::matmul;
#[cfg(not(target_arch = "wasm32"))]
use faer::{Accum, MatMut, MatRef};

use super::{CompatError, Matrix, Result};
use crate::space::Metric;

/// Score-matrix budget per block (in `f32` values): about 8 MiB.
const BLOCK_VALUES: usize = 1 << 21;
/// Chunk of scores whose maximum is checked before looking at each one.
const CHUNK: usize = 32;

/// The `k` nearest base rows of each query row, best first, as a flat `rows * k` table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Neighbors {
    k: usize,
    ids: Vec<u32>,
}

impl Neighbors {
    /// Neighbours per row.
    pub fn k(&self) -> usize {
        self.k
    }

    /// Number of query rows.
    pub fn rows(&self) -> usize {
        self.ids.len().checked_div(self.k).unwrap_or(0)
    }

    /// Neighbours of row `i`, nearest first (panics when out of range).
    pub fn row(&self, i: usize) -> &[u32] {
        &self.ids[i * self.k..(i + 1) * self.k]
    }

    /// Iterate over rows of neighbours.
    pub fn iter_rows(&self) -> std::slice::ChunksExact<'_, u32> {
        self.ids.chunks_exact(self.k.max(1))
    }

    /// The flat row-major table of neighbour ids.
    pub fn as_flat(&self) -> &[u32] {
        &self.ids
    }

    /// Build from a flat table (`ids.len()` a multiple of `k`).
    pub fn from_flat(k: usize, ids: Vec<u32>) -> Result<Self> {
        if k == 0 || !ids.len().is_multiple_of(k) {
            return Err(CompatError::Shape {
                what: "neighbour table".into(),
                message: format!("{} ids are not whole rows of k = {k}", ids.len()),
            });
        }
        Ok(Neighbors { k, ids })
    }
}

/// The `k` nearest other rows of every row of `m` (a row is never its own neighbour).
///
/// `metric` ranks by cosine similarity (rows normalised first; zero rows score 0), inner
/// product, or Euclidean distance. Ties go to the lower row index, so results are
/// deterministic. Needs `k < m.rows()`.
pub fn knn(m: &Matrix<'_>, k: usize, metric: Metric) -> Result<Neighbors> {
    check_k(
        k,
        m.rows().saturating_sub(1),
        "k-nearest-neighbour search within a sample",
    )?;
    check_ids(m.rows())?;
    let prepared = prepare(m, metric);
    let base = prepared.as_deref().unwrap_or(m.data());
    let sq = squared_norms(base, m.dim(), metric);
    Ok(search_self(base, m.dim(), k, metric, sq.as_deref()))
}

/// The `k` nearest rows of `base` for every row of `queries` (same dimension).
///
/// Same ranking rules as [`knn`]; no row is excluded. Needs `k <= base.rows()`.
pub fn knn_queries(
    queries: &Matrix<'_>,
    base: &Matrix<'_>,
    k: usize,
    metric: Metric,
) -> Result<Neighbors> {
    if queries.dim() != base.dim() {
        return Err(CompatError::Shape {
            what: "query set".into(),
            message: format!(
                "queries have dimension {} but the base vectors {}; embed queries with the model of the space searched",
                queries.dim(),
                base.dim()
            ),
        });
    }
    check_k(k, base.rows(), "k-nearest-neighbour search")?;
    check_ids(base.rows())?;
    let q = prepare(queries, metric);
    let b = prepare(base, metric);
    let b = b.as_deref().unwrap_or(base.data());
    let sq = squared_norms(b, base.dim(), metric);
    Ok(search(
        q.as_deref().unwrap_or(queries.data()),
        b,
        base.dim(),
        k,
        metric,
        sq.as_deref(),
        false,
    ))
}

fn check_k(k: usize, available: usize, what: &str) -> Result<()> {
    if k == 0 || k > available {
        return Err(CompatError::TooFewRows {
            what: format!("{what} with k = {k}"),
            rows: available,
            needed: k.max(1),
            hint: "use a smaller k or a larger sample".into(),
        });
    }
    Ok(())
}

fn check_ids(rows: usize) -> Result<()> {
    if u32::try_from(rows).is_err() {
        return Err(CompatError::Shape {
            what: "neighbour search".into(),
            message: format!("{rows} rows exceed the u32 id range; search a sample"),
        });
    }
    Ok(())
}

/// Cosine: a normalised copy. Other metrics use the data as is.
fn prepare(m: &Matrix<'_>, metric: Metric) -> Option<Vec<f32>> {
    (metric == Metric::Cosine).then(|| {
        let mut v = m.data().to_vec();
        crate::space::normalize_flat(&mut v, m.dim());
        v
    })
}

/// L2 ranks by `2 q.b - |b|^2` (the query's own norm does not change the order).
fn squared_norms(base: &[f32], dim: usize, metric: Metric) -> Option<Vec<f32>> {
    (metric == Metric::L2).then(|| {
        base.chunks_exact(dim)
            .map(|r| r.iter().map(|x| x * x).sum())
            .collect()
    })
}

/// Blocked search: `queries` (nq x d) against `base` (nb x d), both row-major.
#[allow(clippy::cast_possible_truncation)]
fn search(
    queries: &[f32],
    base: &[f32],
    dim: usize,
    k: usize,
    metric: Metric,
    base_sq: Option<&[f32]>,
    exclude_self: bool,
) -> Neighbors {
    let nq = queries.len() / dim;
    let nb = base.len() / dim;
    let block = (BLOCK_VALUES / nb.max(1)).clamp(16, 1024).min(nq.max(1));
    let mut scores = vec![0f32; block * nb];
    let mut ids = vec![0u32; nq * k];
    let mut top = TopK::new(k);
    let mut start = 0;
    while start < nq {
        let rows = block.min(nq - start);
        let buf = &mut scores[..rows * nb];
        let (alpha, sq) = match (metric, base_sq) {
            (Metric::L2, Some(sq)) => (2.0f32, Some(sq)),
            _ => (1.0f32, None),
        };
        block_dot(
            buf,
            &queries[start * dim..(start + rows) * dim],
            base,
            dim,
            alpha,
        );
        for (r, row) in buf.chunks_exact_mut(nb).enumerate() {
            if let Some(sq) = sq {
                for (s, q) in row.iter_mut().zip(sq) {
                    *s -= q;
                }
            }
            let skip = exclude_self.then_some(start + r);
            top.select(row, skip, &mut ids[(start + r) * k..(start + r + 1) * k]);
        }
        start += rows;
    }
    Neighbors { k, ids }
}

/// Rows per block of the symmetric self-search.
const SELF_BLOCK: usize = 1024;

/// `dst[r * nb + c] = alpha * <lhs_r, rhs_c>` for the rows of `lhs` (`nl x dim`) against
/// the rows of `rhs` (`nb x dim`), both row-major: faer's matrix product natively.
#[cfg(not(target_arch = "wasm32"))]
fn block_dot(dst: &mut [f32], lhs: &[f32], rhs: &[f32], dim: usize, alpha: f32) {
    let (nl, nb) = (lhs.len() / dim, rhs.len() / dim);
    let l = MatRef::from_row_major_slice(lhs, nl, dim);
    let r = MatRef::from_row_major_slice(rhs, nb, dim);
    let d = MatMut::from_row_major_slice_mut(dst, nl, nb);
    matmul(
        d,
        Accum::Replace,
        l,
        r.transpose(),
        alpha,
        faer::get_global_parallelism(),
    );
}

/// The same product in wasm32, where faer's `gemm` has only a scalar micro-kernel: 4 x 4
/// dot products at a time over 4-lane chunks (LLVM turns the lane loops into simd128
/// `f32x4` multiplies and adds), tiled so a tile of `rhs` stays in cache.
#[cfg(target_arch = "wasm32")]
fn block_dot(dst: &mut [f32], lhs: &[f32], rhs: &[f32], dim: usize, alpha: f32) {
    /// Rows of `rhs` per tile (64 x 384 x 4 B = 96 KiB).
    const TILE: usize = 64;
    let (nl, nb) = (lhs.len() / dim, rhs.len() / dim);
    fn row(m: &[f32], i: usize, dim: usize) -> &[f32] {
        &m[i * dim..(i + 1) * dim]
    }
    let mut t0 = 0;
    while t0 < nb {
        let t1 = (t0 + TILE).min(nb);
        let mut r = 0;
        while r < nl {
            let rn = (nl - r).min(4);
            let mut c = t0;
            while c < t1 {
                let cn = (t1 - c).min(4);
                if rn == 4 && cn == 4 {
                    let q = [
                        row(lhs, r, dim),
                        row(lhs, r + 1, dim),
                        row(lhs, r + 2, dim),
                        row(lhs, r + 3, dim),
                    ];
                    let b = [
                        row(rhs, c, dim),
                        row(rhs, c + 1, dim),
                        row(rhs, c + 2, dim),
                        row(rhs, c + 3, dim),
                    ];
                    let out = dot4x4(q, b, dim);
                    for (i, o) in out.iter().enumerate() {
                        for (j, v) in o.iter().enumerate() {
                            dst[(r + i) * nb + c + j] = alpha * v;
                        }
                    }
                } else {
                    for i in r..r + rn {
                        for j in c..c + cn {
                            dst[i * nb + j] = alpha * dot(row(lhs, i, dim), row(rhs, j, dim));
                        }
                    }
                }
                c += cn;
            }
            r += rn;
        }
        t0 = t1;
    }
}

/// Sixteen dot products of four rows with four rows, four lanes at a time.
#[cfg(target_arch = "wasm32")]
fn dot4x4(q: [&[f32]; 4], b: [&[f32]; 4], dim: usize) -> [[f32; 4]; 4] {
    let mut acc = [[[0f32; 4]; 4]; 4];
    let whole = dim - dim % 4;
    let mut o = 0;
    while o < whole {
        let lanes = |x: &[f32]| -> [f32; 4] { [x[o], x[o + 1], x[o + 2], x[o + 3]] };
        let qa = [lanes(q[0]), lanes(q[1]), lanes(q[2]), lanes(q[3])];
        let ba = [lanes(b[0]), lanes(b[1]), lanes(b[2]), lanes(b[3])];
        for (acc_i, qi) in acc.iter_mut().zip(&qa) {
            for (acc_ij, bj) in acc_i.iter_mut().zip(&ba) {
                for l in 0..4 {
                    acc_ij[l] += qi[l] * bj[l];
                }
            }
        }
        o += 4;
    }
    let mut out = [[0f32; 4]; 4];
    for i in 0..4 {
        for j in 0..4 {
            let a = acc[i][j];
            let mut s = (a[0] + a[1]) + (a[2] + a[3]);
            for t in whole..dim {
                s += q[i][t] * b[j][t];
            }
            out[i][j] = s;
        }
    }
    out
}

/// One dot product (the edges of [`block_dot`] in wasm32).
#[cfg(target_arch = "wasm32")]
fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// Self-search exploiting symmetry: the score of `(i, j)` is computed once, for `i` in a
/// block at or before `j`'s, and offered both to row `i` (candidate `j`) and row `j`
/// (candidate `i`). Half the multiply-adds of a full product.
#[allow(clippy::cast_possible_truncation, clippy::many_single_char_names)]
fn search_self(
    base: &[f32],
    dim: usize,
    k: usize,
    metric: Metric,
    sq: Option<&[f32]>,
) -> Neighbors {
    let n = base.len() / dim;
    let b = SELF_BLOCK.min(n);
    let zeros = vec![0f32; n];
    // L2 ranks row i's candidate j by 2 x_i.x_j - |x_j|^2; other metrics by x_i.x_j.
    let (alpha, off) = match (metric, sq) {
        (Metric::L2, Some(sq)) => (2.0f32, sq),
        _ => (1.0f32, zeros.as_slice()),
    };
    let mut table = TopKTable::new(n, k);
    let mut scores = vec![0f32; b * b];
    let mut bi = 0;
    while bi < n {
        let ni = b.min(n - bi);
        let lhs = &base[bi * dim..(bi + ni) * dim];
        let mut bj = bi;
        while bj < n {
            let nj = b.min(n - bj);
            let buf = &mut scores[..ni * nj];
            block_dot(buf, lhs, &base[bj * dim..(bj + nj) * dim], dim, alpha);
            let off_j = &off[bj..bj + nj];
            for (r, row) in buf.chunks_exact(nj).enumerate() {
                let i = bi + r;
                // Row i, candidates j in block J (itself excluded on the diagonal block).
                table.offer_row(i, row, off_j, bj, (bi == bj).then_some(r));
                // Rows j in block J, candidate i (off the diagonal block only).
                if bi != bj {
                    table.offer_column(row, off[i], bj, i as u32);
                }
            }
            bj += nj;
        }
        bi += ni;
    }
    table.into_neighbors()
}

/// Running top-k of every row: scores and ids best first, ties to the lower id.
struct TopKTable {
    k: usize,
    scores: Vec<f32>,
    ids: Vec<u32>,
    /// Score of each row's current k-th entry (`-inf` until k candidates were seen).
    worst: Vec<f32>,
}

impl TopKTable {
    fn new(n: usize, k: usize) -> Self {
        TopKTable {
            k,
            scores: vec![f32::NEG_INFINITY; n * k],
            ids: vec![u32::MAX; n * k],
            worst: vec![f32::NEG_INFINITY; n],
        }
    }

    /// Offer candidate `id` with score `s` to `row`.
    #[inline]
    fn offer(&mut self, row: usize, s: f32, id: u32) {
        let k = self.k;
        let sc = &mut self.scores[row * k..(row + 1) * k];
        let ids = &mut self.ids[row * k..(row + 1) * k];
        let better = |s2: f32, id2: u32| s > s2 || (s == s2 && id < id2);
        if !better(sc[k - 1], ids[k - 1]) {
            return;
        }
        let mut pos = k - 1;
        while pos > 0 && better(sc[pos - 1], ids[pos - 1]) {
            sc[pos] = sc[pos - 1];
            ids[pos] = ids[pos - 1];
            pos -= 1;
        }
        sc[pos] = s;
        ids[pos] = id;
        self.worst[row] = sc[k - 1];
    }

    /// Row `i` sees `dots[c] - off[c]` for candidate `first + c` (skipping column `skip`).
    #[allow(clippy::cast_possible_truncation)]
    fn offer_row(
        &mut self,
        i: usize,
        dots: &[f32],
        off: &[f32],
        first: usize,
        skip: Option<usize>,
    ) {
        let mut c0 = 0;
        for (chunk, offs) in dots.chunks(CHUNK).zip(off.chunks(CHUNK)) {
            let max = chunk
                .iter()
                .zip(offs)
                .map(|(d, o)| d - o)
                .fold(f32::NEG_INFINITY, f32::max);
            if max >= self.worst[i] {
                for (c, (d, o)) in chunk.iter().zip(offs).enumerate() {
                    let col = c0 + c;
                    let s = d - o;
                    if s >= self.worst[i] && Some(col) != skip {
                        self.offer(i, s, (first + col) as u32);
                    }
                }
            }
            c0 += chunk.len();
        }
    }

    /// Rows `first + c` see `dots[c] - off` for candidate `id`.
    fn offer_column(&mut self, dots: &[f32], off: f32, first: usize, id: u32) {
        let mut c0 = 0;
        for chunk in dots.chunks(CHUNK) {
            let worst = &self.worst[first + c0..first + c0 + chunk.len()];
            let any = chunk
                .iter()
                .zip(worst)
                .fold(false, |acc, (d, w)| acc | (d - off >= *w));
            if any {
                for (c, d) in chunk.iter().enumerate() {
                    let row = first + c0 + c;
                    let s = d - off;
                    if s >= self.worst[row] {
                        self.offer(row, s, id);
                    }
                }
            }
            c0 += chunk.len();
        }
    }

    fn into_neighbors(self) -> Neighbors {
        Neighbors {
            k: self.k,
            ids: self.ids,
        }
    }
}

/// Streaming top-k selection with a reusable buffer.
struct TopK {
    k: usize,
    buf: Vec<(f32, u32)>,
}

impl TopK {
    fn new(k: usize) -> Self {
        TopK {
            k,
            buf: Vec::with_capacity(k + 1),
        }
    }

    /// Best `k` of `scores` (skipping index `skip`), best first, ties to the lower index.
    #[allow(clippy::cast_possible_truncation)]
    fn select(&mut self, scores: &[f32], skip: Option<usize>, out: &mut [u32]) {
        let k = self.k;
        let buf = &mut self.buf;
        buf.clear();
        // Fill with the first k candidates.
        let mut j = 0;
        while buf.len() < k {
            if Some(j) != skip {
                buf.push((scores[j], j as u32));
            }
            j += 1;
        }
        buf.sort_unstable_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
        let mut worst = buf[k - 1].0;
        // Scan the rest, chunk by chunk.
        while j < scores.len() {
            let end = (j + CHUNK).min(scores.len());
            let chunk = &scores[j..end];
            let max = chunk.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            if max > worst {
                for (o, &s) in chunk.iter().enumerate() {
                    let idx = j + o;
                    if s > worst && Some(idx) != skip {
                        // Insert keeping order; a later index loses ties, so strict `>`.
                        let mut pos = k - 1;
                        while pos > 0 && buf[pos - 1].0 < s {
                            pos -= 1;
                        }
                        buf.insert(pos, (s, idx as u32));
                        buf.pop();
                        worst = buf[k - 1].0;
                    }
                }
            }
            j = end;
        }
        for (o, (_, id)) in out.iter_mut().zip(buf.iter()) {
            *o = *id;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compat::testdata;

    /// Brute force with a full sort, for comparison.
    fn brute(m: &Matrix<'_>, k: usize, metric: Metric) -> Vec<Vec<u32>> {
        let n = m.rows();
        let score = |a: &[f32], b: &[f32]| -> f64 {
            let dot: f64 = a
                .iter()
                .zip(b)
                .map(|(x, y)| f64::from(*x) * f64::from(*y))
                .sum();
            let na: f64 = a.iter().map(|x| f64::from(*x).powi(2)).sum::<f64>().sqrt();
            let nb: f64 = b.iter().map(|x| f64::from(*x).powi(2)).sum::<f64>().sqrt();
            match metric {
                Metric::Cosine => dot / (na * nb),
                Metric::Dot => dot,
                Metric::L2 => -(na * na + nb * nb - 2.0 * dot),
            }
        };
        (0..n)
            .map(|i| {
                let mut c: Vec<(f64, u32)> = (0..n)
                    .filter(|&j| j != i)
                    .map(|j| (score(m.row(i), m.row(j)), u32::try_from(j).unwrap()))
                    .collect();
                c.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
                c.into_iter().take(k).map(|x| x.1).collect()
            })
            .collect()
    }

    #[test]
    fn hand_computed_neighbours() {
        // Points on a line: 0, 1, 3, 7 (L2); nearest of 1 is 0, then 3.
        let data = [0.0f32, 1.0, 3.0, 7.0];
        let m = Matrix::new(&data, 1).unwrap();
        let nn = knn(&m, 2, Metric::L2).unwrap();
        assert_eq!(nn.row(0), &[1, 2]);
        assert_eq!(nn.row(1), &[0, 2]);
        assert_eq!(nn.row(2), &[1, 0]);
        assert_eq!(nn.row(3), &[2, 1]);
        // Cosine ignores length: (1,0) and (10,1) are closer than (1,0) and (1,1).
        let data = [1.0f32, 0.0, 1.0, 1.0, 10.0, 1.0, 0.0, 1.0];
        let m = Matrix::new(&data, 2).unwrap();
        assert_eq!(knn(&m, 1, Metric::Cosine).unwrap().row(0), &[2]);
        // Dot prefers long vectors.
        assert_eq!(knn(&m, 1, Metric::Dot).unwrap().row(0), &[2]);
        assert_eq!(knn(&m, 1, Metric::Dot).unwrap().row(3), &[1]);
    }

    #[test]
    fn matches_brute_force_on_random_data() {
        let data = testdata::latent(300, 24, 8, 0.3, 11);
        let m = Matrix::new(&data, 24).unwrap();
        for metric in [Metric::Cosine, Metric::Dot, Metric::L2] {
            let nn = knn(&m, 7, metric).unwrap();
            let bf = brute(&m, 7, metric);
            let agree: usize = (0..300)
                .map(|i| nn.row(i).iter().zip(&bf[i]).filter(|(a, b)| a == b).count())
                .sum();
            // f32 vs f64 rounding may swap near-ties; nearly everything must agree.
            assert!(agree >= 300 * 7 * 99 / 100, "{metric:?}: {agree}");
        }
    }

    #[test]
    fn queries_against_base() {
        let base = [0.0f32, 0.0, 1.0, 0.0, 0.0, 1.0, 5.0, 5.0];
        let q = [0.9f32, 0.1, 4.0, 4.0];
        let b = Matrix::new(&base, 2).unwrap();
        let qm = Matrix::new(&q, 2).unwrap();
        let nn = knn_queries(&qm, &b, 2, Metric::L2).unwrap();
        assert_eq!(nn.row(0), &[1, 0]);
        // (1,0) and (0,1) tie at distance 25 from (4,4): the lower index wins.
        assert_eq!(nn.row(1), &[3, 1]);
        assert_eq!(nn.rows(), 2);
        assert!(knn_queries(&qm, &b, 5, Metric::L2).is_err());
        let q3 = Matrix::new(&[1.0, 2.0, 3.0], 3).unwrap();
        assert!(
            knn_queries(&q3, &b, 1, Metric::L2)
                .unwrap_err()
                .to_string()
                .contains("dimension 3")
        );
    }

    #[test]
    fn k_must_leave_room_for_self_exclusion() {
        let m = Matrix::new(&[1.0, 2.0, 3.0], 1).unwrap();
        assert!(knn(&m, 2, Metric::L2).is_ok());
        let e = knn(&m, 3, Metric::L2).unwrap_err().to_string();
        assert!(e.contains("k = 3") && e.contains("smaller k"), "{e}");
        assert!(knn(&m, 0, Metric::L2).is_err());
    }

    #[test]
    fn blocks_larger_than_one_chunk_agree_with_brute_force() {
        // 2100 rows: more than one query block, many chunks per row.
        let data = testdata::latent(2100, 8, 4, 0.5, 5);
        let m = Matrix::new(&data, 8).unwrap();
        let nn = knn(&m, 5, Metric::L2).unwrap();
        let bf = brute(&m, 5, Metric::L2);
        let exact = (0..2100).filter(|&i| nn.row(i) == bf[i].as_slice()).count();
        assert!(exact >= 2100 * 98 / 100, "{exact}");
        assert!((0..2100).all(|i| !nn.row(i).contains(&u32::try_from(i).unwrap())));
    }
}
