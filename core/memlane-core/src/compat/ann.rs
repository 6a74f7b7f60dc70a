//! k-nearest neighbours of large samples: exact up to a size, an HNSW graph above it.
//!
//! Exact self-kNN ([`knn()`](super::knn())) costs `n² · d` multiply-adds, an HNSW graph
//! about `n · ef · log n` distances. Above [`EXACT_UP_TO`] rows [`neighbours`] builds an
//! HNSW graph (the `hnsw_rs` crate, native builds with the `hnsw` feature) and searches it
//! instead. Measured (`cargo bench -p memlane-core --features hnsw --bench knn_large`,
//! 2 cores, 100k rows of 384-d and 256-d): exact 108 s for both spaces, hnsw_rs (M=16,
//! ef=64) 431 s, faiss-cpu HNSW with the same parameters 112 s. Blocked matrix products
//! win at the sizes memlane samples, so the default switches only where the `n²` term
//! must dominate (an extrapolation from that measurement, not yet measured itself). An approximation is only useful when its error is
//! known, so every approximate result comes with an [`Approximation`]: the graph's own
//! recall@k against exact search, measured on a seeded sub-sample of rows and reported
//! beside the metrics it fed.
//!
//! Without the `hnsw` feature (wasm32) every search is exact.

use serde::{Deserialize, Serialize};

use super::{Matrix, Neighbors, Result};
use crate::space::Metric;

/// Rows up to which a sample's neighbours are computed exactly (above: HNSW). At 100k
/// rows exact search was 4x faster than hnsw_rs here; with exact growing as `n²` and the
/// graph as `n log n`, the crossover extrapolates to about 500k rows.
pub const EXACT_UP_TO: usize = 500_000;

/// Rows whose exact neighbours are compared with the graph's to measure its recall.
pub const RECALL_CHECK_ROWS: usize = 500;

/// Parameters of the HNSW graph (`hnsw_rs`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HnswParams {
    /// Links per node (`M`, at most 256).
    pub m: usize,
    /// Candidate list while building (`ef_construction`).
    pub ef_construction: usize,
    /// Candidate list while searching (`ef`, at least `k + 1`).
    pub ef_search: usize,
}

impl Default for HnswParams {
    fn default() -> Self {
        HnswParams {
            m: 16,
            ef_construction: 64,
            ef_search: 64,
        }
    }
}

/// How [`neighbours`] searches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum KnnPolicy {
    /// Always exact.
    Exact,
    /// Exact up to `exact_up_to` rows, HNSW above (exact without the `hnsw` feature).
    Auto {
        /// Largest sample searched exactly.
        exact_up_to: usize,
        /// Graph parameters above it.
        hnsw: HnswParams,
    },
    /// Always HNSW (exact without the `hnsw` feature).
    Hnsw(HnswParams),
}

impl Default for KnnPolicy {
    fn default() -> Self {
        KnnPolicy::Auto {
            exact_up_to: EXACT_UP_TO,
            hnsw: HnswParams::default(),
        }
    }
}

impl KnnPolicy {
    /// The graph parameters for a sample of `rows` rows, or `None` for exact search.
    pub fn hnsw_for(&self, rows: usize) -> Option<HnswParams> {
        if !cfg!(feature = "hnsw") {
            return None;
        }
        match *self {
            KnnPolicy::Exact => None,
            KnnPolicy::Auto { exact_up_to, hnsw } => (rows > exact_up_to).then_some(hnsw),
            KnnPolicy::Hnsw(p) => Some(p),
        }
    }
}

/// How approximate a neighbour table is: the graph used and its measured recall.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Approximation {
    /// What was searched (e.g. `old`, `new`, the space name).
    pub of: String,
    /// The method, `hnsw` (the `hnsw_rs` crate).
    pub method: String,
    /// Rows in the graph.
    pub rows: usize,
    /// Neighbours per row.
    pub k: usize,
    /// Graph parameters.
    pub params: HnswParams,
    /// Rows whose exact neighbours were computed for the check.
    pub checked_rows: usize,
    /// Mean recall@k of the graph against exact search on the checked rows (a neighbour
    /// counts when it is no farther than the exact k-th, so ties are not misses).
    pub recall_vs_exact: f64,
}

impl Approximation {
    /// One line for reports: `old: HNSW (M=16, ef=64) over 100000 rows, recall@10 vs
    /// exact 0.987 on 500 rows`.
    pub fn summary(&self) -> String {
        format!(
            "{}: neighbours by HNSW (M={}, ef={}) over {} rows, recall@{} vs exact {:.3} on {} checked rows",
            self.of,
            self.params.m,
            self.params.ef_search,
            self.rows,
            self.k,
            self.recall_vs_exact,
            self.checked_rows
        )
    }
}

/// The `k` nearest other rows of every row of `m` (as [`knn()`](super::knn())), exact or
/// through an HNSW graph as `policy` decides for `m`'s size. `of` names the vectors in
/// the returned [`Approximation`] (present only when the graph was used).
pub fn neighbours(
    m: &Matrix<'_>,
    k: usize,
    metric: Metric,
    policy: &KnnPolicy,
    of: &str,
) -> Result<(Neighbors, Option<Approximation>)> {
    match policy.hnsw_for(m.rows()) {
        None => Ok((super::knn(m, k, metric)?, None)),
        #[cfg(feature = "hnsw")]
        Some(params) => graph::neighbours(m, k, metric, params, of).map(|(n, a)| (n, Some(a))),
        #[cfg(not(feature = "hnsw"))]
        Some(_) => {
            let _ = of;
            Ok((super::knn(m, k, metric)?, None))
        }
    }
}

#[cfg(feature = "hnsw")]
mod graph {
    //! The HNSW path: prepare vectors so one distance ranks as the metric does, build the
    //! graph in parallel, search every row, and check a sub-sample against exact search.

    use hnsw_rs::prelude::{Distance, Hnsw};

    use super::{Approximation, HnswParams, RECALL_CHECK_ROWS};
    use crate::compat::{CompatError, Matrix, Neighbors, Result, SplitMix64, knn_queries};
    use crate::space::Metric;

    /// Layers of the graph (hnsw_rs caps it at 16).
    const MAX_LAYER: usize = 16;

    /// `1 - a.b` for unit vectors (cosine), never negative.
    #[derive(Clone, Copy, Default)]
    struct UnitDot;

    /// Squared Euclidean distance.
    #[derive(Clone, Copy, Default)]
    struct SquaredL2;

    impl Distance<f32> for UnitDot {
        fn eval(&self, a: &[f32], b: &[f32]) -> f32 {
            (1.0 - dot(a, b)).max(0.0)
        }
    }

    impl Distance<f32> for SquaredL2 {
        fn eval(&self, a: &[f32], b: &[f32]) -> f32 {
            squared_l2(a, b)
        }
    }

    /// Eight independent sums, so the compiler vectorises without reassociating floats.
    fn dot(a: &[f32], b: &[f32]) -> f32 {
        let mut acc = [0f32; 8];
        let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
        let tail: f32 = ca
            .remainder()
            .iter()
            .zip(cb.remainder())
            .map(|(x, y)| x * y)
            .sum();
        for (x, y) in ca.zip(cb) {
            for i in 0..8 {
                acc[i] += x[i] * y[i];
            }
        }
        acc.iter().sum::<f32>() + tail
    }

    fn squared_l2(a: &[f32], b: &[f32]) -> f32 {
        let mut acc = [0f32; 8];
        let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
        let tail: f32 = ca
            .remainder()
            .iter()
            .zip(cb.remainder())
            .map(|(x, y)| (x - y) * (x - y))
            .sum();
        for (x, y) in ca.zip(cb) {
            for i in 0..8 {
                let d = x[i] - y[i];
                acc[i] += d * d;
            }
        }
        acc.iter().sum::<f32>() + tail
    }

    /// Vectors prepared for one distance: `(base rows, query rows, dim, unit-dot?)`.
    ///
    /// Cosine: normalised rows, `1 - a.b` (a zero row stays zero: distance 1 to all).
    /// L2: the rows as they are. Inner product: the rows extended by one coordinate
    /// `sqrt(M² - |x|²)` (`M` the largest norm) with queries extended by 0, so that
    /// Euclidean order equals inner-product order (the standard MIPS-to-NN reduction).
    struct Prepared {
        base: Vec<f32>,
        /// Query rows when they differ from the base rows (inner product only).
        queries: Option<Vec<f32>>,
        dim: usize,
        unit: bool,
    }

    fn prepare(m: &Matrix<'_>, metric: Metric) -> Prepared {
        let d = m.dim();
        match metric {
            Metric::Cosine => {
                let mut v = m.data().to_vec();
                crate::space::normalize_flat(&mut v, d);
                Prepared {
                    base: v,
                    queries: None,
                    dim: d,
                    unit: true,
                }
            }
            Metric::L2 => Prepared {
                base: m.data().to_vec(),
                queries: None,
                dim: d,
                unit: false,
            },
            Metric::Dot => {
                let norms: Vec<f32> = m.iter_rows().map(|r| dot(r, r)).collect();
                let top = norms.iter().copied().fold(0f32, f32::max);
                let mut base = Vec::with_capacity(m.rows() * (d + 1));
                let mut queries = Vec::with_capacity(m.rows() * (d + 1));
                for (r, n) in m.iter_rows().zip(&norms) {
                    base.extend_from_slice(r);
                    base.push((top - n).max(0.0).sqrt());
                    queries.extend_from_slice(r);
                    queries.push(0.0);
                }
                Prepared {
                    base,
                    queries: Some(queries),
                    dim: d + 1,
                    unit: false,
                }
            }
        }
    }

    impl Prepared {
        /// All query rows, flat.
        fn queries(&self) -> &[f32] {
            self.queries.as_deref().unwrap_or(&self.base)
        }

        fn distance(&self, q: usize, b: usize) -> f32 {
            let d = self.dim;
            let qa = &self.queries()[q * d..(q + 1) * d];
            let ba = &self.base[b * d..(b + 1) * d];
            if self.unit {
                UnitDot.eval(qa, ba)
            } else {
                SquaredL2.eval(qa, ba)
            }
        }
    }

    pub(super) fn neighbours(
        m: &Matrix<'_>,
        k: usize,
        metric: Metric,
        params: HnswParams,
        of: &str,
    ) -> Result<(Neighbors, Approximation)> {
        check(m, k, params)?;
        let p = prepare(m, metric);
        let ids = if p.unit {
            search_all(&p, k, params, UnitDot)
        } else {
            search_all(&p, k, params, SquaredL2)
        };
        let nn = Neighbors::from_flat(k, ids)?;
        let (checked_rows, recall_vs_exact) = recall_vs_exact(m, &p, &nn, k, metric)?;
        let approx = Approximation {
            of: of.to_string(),
            method: "hnsw".into(),
            rows: m.rows(),
            k,
            params,
            checked_rows,
            recall_vs_exact,
        };
        Ok((nn, approx))
    }

    fn check(m: &Matrix<'_>, k: usize, params: HnswParams) -> Result<()> {
        if k == 0 || k + 1 > m.rows() {
            return Err(CompatError::TooFewRows {
                what: format!("approximate neighbour search with k = {k}"),
                rows: m.rows().saturating_sub(1),
                needed: k.max(1),
                hint: "use a smaller k or a larger sample".into(),
            });
        }
        if !(2..=256).contains(&params.m) || params.ef_construction < params.m {
            return Err(CompatError::Shape {
                what: "HNSW parameters".into(),
                message: format!(
                    "m = {} and ef_construction = {}: m must be within 2..=256 and ef_construction at least m",
                    params.m, params.ef_construction
                ),
            });
        }
        Ok(())
    }

    /// Build the graph over every row and search each row for its `k` nearest others
    /// (nearest first, ties to the lower row, the row itself left out).
    fn search_all<D>(p: &Prepared, k: usize, params: HnswParams, dist: D) -> Vec<u32>
    where
        D: Distance<f32> + Send + Sync,
    {
        let n = p.base.len() / p.dim;
        let graph = Hnsw::<f32, D>::new(params.m, n, MAX_LAYER, params.ef_construction, dist);
        let rows: Vec<(&[f32], usize)> = p.base.chunks_exact(p.dim).zip(0..n).collect();
        graph.parallel_insert_slice(&rows);
        let queries: Vec<Vec<f32>> = p
            .queries()
            .chunks_exact(p.dim)
            .map(<[f32]>::to_vec)
            .collect();
        let ef = params.ef_search.max(k + 1);
        let found = graph.parallel_search(&queries, k + 1, ef);
        let mut ids = Vec::with_capacity(n * k);
        for (i, hits) in found.into_iter().enumerate() {
            let mut row: Vec<(f32, usize)> = hits
                .into_iter()
                .filter(|h| h.d_id != i)
                .map(|h| (h.distance, h.d_id))
                .collect();
            row.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
            row.truncate(k);
            fill_short_row(&mut row, i, n, k);
            #[allow(clippy::cast_possible_truncation)]
            ids.extend(row.iter().map(|&(_, j)| j as u32));
        }
        ids
    }

    /// A graph search may return fewer than `k` others (a disconnected region): pad with
    /// rows not yet listed so the table stays rectangular; the recall check counts them.
    fn fill_short_row(row: &mut Vec<(f32, usize)>, own: usize, n: usize, k: usize) {
        let mut next = 0;
        while row.len() < k {
            if next != own && !row.iter().any(|&(_, j)| j == next) {
                row.push((f32::INFINITY, next));
            }
            next += 1;
        }
        debug_assert!(next <= n);
    }

    /// Recall@k of `nn` against exact search on a seeded sub-sample of rows. A found
    /// neighbour counts when its distance is within the exact k-th's (ties are not
    /// misses).
    fn recall_vs_exact(
        m: &Matrix<'_>,
        p: &Prepared,
        nn: &Neighbors,
        k: usize,
        metric: Metric,
    ) -> Result<(usize, f64)> {
        let n = m.rows();
        let mut rows = SplitMix64::new(0x0061_6e6e_5f72_6563).permutation(n);
        rows.truncate(RECALL_CHECK_ROWS.min(n));
        rows.sort_unstable();
        let mut q = Vec::with_capacity(rows.len() * m.dim());
        for &r in &rows {
            q.extend_from_slice(m.row(r));
        }
        let exact = knn_queries(&Matrix::new(&q, m.dim())?, m, k + 1, metric)?;
        let mut hits = 0usize;
        for (qi, &r) in rows.iter().enumerate() {
            let truth: Vec<u32> = exact
                .row(qi)
                .iter()
                .copied()
                .filter(|&j| j as usize != r)
                .take(k)
                .collect();
            let Some(&kth) = truth.last() else { continue };
            let bound = p.distance(r, kth as usize);
            let slack = bound.abs() * 1e-5 + 1e-6;
            hits += nn
                .row(r)
                .iter()
                .filter(|&&j| p.distance(r, j as usize) <= bound + slack)
                .count()
                .min(k);
        }
        #[allow(clippy::cast_precision_loss)]
        let recall = hits as f64 / (rows.len() * k).max(1) as f64;
        Ok((rows.len(), recall))
    }
}

#[cfg(all(test, feature = "hnsw"))]
mod tests {
    use super::*;
    use crate::compat::{knn, testdata};

    fn overlap(a: &Neighbors, b: &Neighbors) -> f64 {
        let k = a.k();
        let hits: usize = a
            .iter_rows()
            .zip(b.iter_rows())
            .map(|(x, y)| x.iter().filter(|j| y.contains(j)).count())
            .sum();
        hits as f64 / (a.rows() * k) as f64
    }

    #[test]
    fn small_samples_stay_exact() {
        let data = testdata::latent(300, 16, 6, 0.1, 3);
        let m = Matrix::new(&data, 16).unwrap();
        let (nn, approx) = neighbours(&m, 5, Metric::Cosine, &KnnPolicy::default(), "x").unwrap();
        assert!(approx.is_none());
        assert_eq!(nn, knn(&m, 5, Metric::Cosine).unwrap());
    }

    #[test]
    fn hnsw_matches_exact_and_measures_its_own_recall() {
        for metric in [Metric::Cosine, Metric::L2, Metric::Dot] {
            let data = testdata::latent(3000, 32, 12, 0.2, 7);
            let m = Matrix::new(&data, 32).unwrap();
            let policy = KnnPolicy::Hnsw(HnswParams::default());
            let (nn, approx) = neighbours(&m, 10, metric, &policy, "old").unwrap();
            let approx = approx.expect("graph used");
            let exact = knn(&m, 10, metric).unwrap();
            let true_recall = overlap(&exact, &nn);
            assert!(true_recall > 0.9, "{metric:?}: recall {true_recall}");
            // the sub-sample estimate agrees with the recall over every row
            assert!(
                (approx.recall_vs_exact - true_recall).abs() < 0.03,
                "{metric:?}: estimated {} vs true {true_recall}",
                approx.recall_vs_exact
            );
            assert_eq!(
                (approx.rows, approx.k, approx.checked_rows),
                (3000, 10, 500)
            );
            for (i, row) in nn.iter_rows().enumerate() {
                assert!(!row.contains(&(i as u32)), "row {i} lists itself");
            }
            assert!(approx.summary().contains("recall@10 vs exact"));
        }
    }

    #[test]
    fn a_starved_graph_reports_a_low_recall() {
        let data = testdata::latent(3000, 32, 30, 0.5, 9);
        let m = Matrix::new(&data, 32).unwrap();
        let weak = KnnPolicy::Hnsw(HnswParams {
            m: 2,
            ef_construction: 2,
            ef_search: 11,
        });
        let (nn, approx) = neighbours(&m, 10, Metric::Cosine, &weak, "old").unwrap();
        let true_recall = overlap(&knn(&m, 10, Metric::Cosine).unwrap(), &nn);
        let est = approx.unwrap().recall_vs_exact;
        assert!(
            true_recall < 0.9,
            "a 2-link graph should miss: {true_recall}"
        );
        assert!((est - true_recall).abs() < 0.05, "{est} vs {true_recall}");
    }

    #[test]
    fn duplicates_do_not_count_as_misses() {
        // 50 distinct vectors, each 40 times: any 10 copies are correct neighbours
        let base = testdata::latent(50, 16, 8, 0.3, 11);
        let data: Vec<f32> = (0..40).flat_map(|_| base.iter().copied()).collect();
        let m = Matrix::new(&data, 16).unwrap();
        let (_, approx) = neighbours(
            &m,
            10,
            Metric::Cosine,
            &KnnPolicy::Hnsw(HnswParams::default()),
            "x",
        )
        .unwrap();
        assert!(approx.unwrap().recall_vs_exact > 0.95);
    }

    #[test]
    fn bad_parameters_are_refused_with_the_fix() {
        let data = testdata::latent(100, 8, 4, 0.1, 1);
        let m = Matrix::new(&data, 8).unwrap();
        let bad = KnnPolicy::Hnsw(HnswParams {
            m: 300,
            ef_construction: 400,
            ef_search: 50,
        });
        let err = neighbours(&m, 5, Metric::Cosine, &bad, "x").unwrap_err();
        assert!(err.to_string().contains("within 2..=256"), "{err}");
    }
}
