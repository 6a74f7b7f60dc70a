//! Metrics on paired samples: row `i` of `old` and row `i` of `new` are the same record
//! embedded by the old and the new model.

use serde::{Deserialize, Serialize};

use super::linalg::{self, count};
use super::{CompatError, Matrix, Neighbors, Result, SplitMix64, check_paired};
use crate::space::Metric;

/// Equal-width histogram of some values over `[lo, hi]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Histogram {
    /// Lower edge of the first bin.
    pub lo: f64,
    /// Upper edge of the last bin.
    pub hi: f64,
    /// Count per bin.
    pub counts: Vec<u64>,
}

impl Histogram {
    /// `bins` equal bins over `[lo, hi]` (values outside are clamped into the end bins).
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    pub fn new(values: impl IntoIterator<Item = f64>, lo: f64, hi: f64, bins: usize) -> Self {
        let bins = bins.max(1);
        let mut counts = vec![0u64; bins];
        let width = (hi - lo) / count(bins);
        for v in values {
            let b = if width > 0.0 {
                (((v - lo) / width).floor().max(0.0) as usize).min(bins - 1)
            } else {
                0
            };
            counts[b] += 1;
        }
        Histogram { lo, hi, counts }
    }
}

/// Mean, spread and shape of per-row values.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Distribution {
    /// Mean.
    pub mean: f64,
    /// Population standard deviation.
    pub std: f64,
    /// Smallest value.
    pub min: f64,
    /// 5th percentile.
    pub p05: f64,
    /// Median.
    pub p50: f64,
    /// 95th percentile.
    pub p95: f64,
    /// Largest value.
    pub max: f64,
    /// Histogram (20 bins over `[min, max]`, or over the metric's natural range).
    pub histogram: Histogram,
}

impl Distribution {
    /// Summarise `values`, with a histogram over `range` (default: `[min, max]`).
    #[allow(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        clippy::cast_precision_loss
    )]
    pub fn of(values: &[f64], range: Option<(f64, f64)>) -> Self {
        if values.is_empty() {
            return Distribution {
                mean: 0.0,
                std: 0.0,
                min: 0.0,
                p05: 0.0,
                p50: 0.0,
                p95: 0.0,
                max: 0.0,
                histogram: Histogram::new([], 0.0, 0.0, 1),
            };
        }
        let n = count(values.len());
        let mean = values.iter().sum::<f64>() / n;
        let std = (values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n).sqrt();
        let mut s = values.to_vec();
        s.sort_by(f64::total_cmp);
        let q = |p: f64| s[((p * (n - 1.0)).round() as usize).min(s.len() - 1)];
        let (min, max) = (s[0], s[s.len() - 1]);
        let (lo, hi) = range.unwrap_or((min, max));
        Distribution {
            mean,
            std,
            min,
            p05: q(0.05),
            p50: q(0.5),
            p95: q(0.95),
            max,
            histogram: Histogram::new(values.iter().copied(), lo, hi, 20),
        }
    }
}

/// A paired neighbourhood score: its mean, the same score with the pairing shuffled,
/// and how it spreads over rows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PairedScore {
    /// Mean over rows.
    pub mean: f64,
    /// Mean over rows with the pairing shuffled (chance level).
    pub baseline: f64,
    /// Spread over rows.
    pub distribution: Distribution,
    /// Rows whose old and new neighbour sets share `c` records, for `c = 0..=k`.
    pub shared_counts: Vec<u64>,
    /// Per-row values (for plotting), in row order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub per_row: Vec<f32>,
}

/// Neighbourhood agreement between the old and new neighbour tables of the same records:
/// `(overlap, recall)`.
///
/// - overlap = Jaccard of the two k-sets, `|A ∩ B| / |A ∪ B|`;
/// - recall = share of the old neighbours found among the new ones, `|A ∩ B| / k`.
///
/// Each comes with a baseline computed with the pairing shuffled (a seeded derangement):
/// record `i`'s old neighbours are compared with the new neighbours of another record,
/// relabelled through the same shuffle. That is the level two unrelated spaces reach, about
/// `k / (n - 1)` for recall.
pub fn neighborhood_scores(
    old: &Neighbors,
    new: &Neighbors,
    seed: u64,
) -> Result<(PairedScore, PairedScore)> {
    if old.rows() != new.rows() || old.k() != new.k() {
        return Err(CompatError::Shape {
            what: "neighbour tables".into(),
            message: format!(
                "old has {} rows of k = {} but new has {} rows of k = {}; search both spaces with the same sample and k",
                old.rows(),
                old.k(),
                new.rows(),
                new.k()
            ),
        });
    }
    let (n, k) = (old.rows(), old.k());
    if n < 2 {
        return Err(CompatError::TooFewRows {
            what: "neighbourhood scores".into(),
            rows: n,
            needed: 2,
            hint: "embed a larger sample".into(),
        });
    }
    // Row `i` marks its old neighbours with tag `i + 1`, then counts marked new ones.
    let mut stamp = vec![0u32; n];
    let mut shared_with = |i: usize, other: &mut dyn Iterator<Item = usize>| -> usize {
        let tag = u32::try_from(i + 1).unwrap_or(u32::MAX);
        for &j in old.row(i) {
            stamp[j as usize] = tag;
        }
        other.filter(|&j| stamp[j] == tag).count()
    };
    let shared: Vec<usize> = (0..n)
        .map(|i| shared_with(i, &mut new.row(i).iter().map(|&j| j as usize)))
        .collect();
    // Shuffled pairing: record i is paired with new row p[i]; new row j stands for record inv[j].
    let p = SplitMix64::new(seed).derangement(n);
    let mut inv = vec![0usize; n];
    for (i, &pi) in p.iter().enumerate() {
        inv[pi] = i;
    }
    let base: Vec<usize> = (0..n)
        .map(|i| shared_with(i, &mut new.row(p[i]).iter().map(|&j| inv[j as usize])))
        .collect();
    let kf = count(k);
    let jaccard = |c: usize| count(c) / (2.0 * kf - count(c));
    let recall = |c: usize| count(c) / kf;
    let mut hist = vec![0u64; k + 1];
    for &c in &shared {
        hist[c] += 1;
    }
    let build = |f: &dyn Fn(usize) -> f64| {
        let vals: Vec<f64> = shared.iter().map(|&c| f(c)).collect();
        let baseline = base.iter().map(|&c| f(c)).sum::<f64>() / count(n);
        #[allow(clippy::cast_possible_truncation)]
        PairedScore {
            mean: vals.iter().sum::<f64>() / count(n),
            baseline,
            distribution: Distribution::of(&vals, Some((0.0, 1.0))),
            shared_counts: hist.clone(),
            per_row: vals.iter().map(|&v| v as f32).collect(),
        }
    };
    Ok((build(&jaccard), build(&recall)))
}

/// Mean recall@k of a query set: for each query with at least one relevant row, the share
/// of its relevant rows found among its `k` nearest base rows,
/// `|top-k ∩ relevant| / min(|relevant|, k)` (so a query with more than `k` relevant rows
/// can still reach 1).
/// Queries without relevant rows are skipped; returns `(mean recall, queries counted)`.
pub fn retrieval_recall(
    queries: &Matrix<'_>,
    base: &Matrix<'_>,
    relevant: &[Vec<u32>],
    k: usize,
    metric: Metric,
) -> Result<(f64, usize)> {
    if relevant.len() != queries.rows() {
        return Err(CompatError::Shape {
            what: "query set".into(),
            message: format!(
                "{} queries but {} lists of relevant rows; give one list per query",
                queries.rows(),
                relevant.len()
            ),
        });
    }
    if let Some(bad) = relevant
        .iter()
        .flatten()
        .find(|&&r| r as usize >= base.rows())
    {
        return Err(CompatError::Shape {
            what: "query set".into(),
            message: format!(
                "relevant row {bad} is out of range (the sample has {} rows); relevant ids are row indices into the sample",
                base.rows()
            ),
        });
    }
    let nn = super::knn_queries(queries, base, k, metric)?;
    let (mut sum, mut counted) = (0.0, 0usize);
    for (q, rel) in relevant.iter().enumerate() {
        if rel.is_empty() {
            continue;
        }
        let hits = rel.iter().filter(|r| nn.row(q).contains(r)).count();
        sum += count(hits) / count(rel.len().min(k));
        counted += 1;
    }
    Ok((
        if counted == 0 {
            0.0
        } else {
            sum / count(counted)
        },
        counted,
    ))
}

/// Linear CKA between the paired samples (centred, feature-space form):
/// `||Yᵀ X||²_F / (||Xᵀ X||_F · ||Yᵀ Y||_F)`, in `[0, 1]`; 1 when one space is a scaled
/// rotation of the other. Rows are normalised first for the cosine metric.
pub fn cka(old: &Matrix<'_>, new: &Matrix<'_>, metric: Metric) -> Result<f64> {
    check_paired(old, new)?;
    let norm = metric == Metric::Cosine;
    let (_, x) = linalg::center(&linalg::to_f64(old, None, norm), None);
    let (_, y) = linalg::center(&linalg::to_f64(new, None, norm), None);
    let yx = linalg::frob(linalg::at_b(y.as_ref(), x.as_ref()).as_ref());
    let xx = linalg::frob(linalg::at_b(x.as_ref(), x.as_ref()).as_ref());
    let yy = linalg::frob(linalg::at_b(y.as_ref(), y.as_ref()).as_ref());
    Ok(if xx == 0.0 || yy == 0.0 {
        0.0
    } else {
        yx * yx / (xx * yy)
    })
}

/// How well an orthogonal map (with one scale factor) aligns the new space onto the old.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Procrustes {
    /// `||s·Y·W − X||_F / ||X||_F` after the best rotation `W` and scale `s` (0 = exact).
    pub residual: f64,
    /// Mean cosine between each aligned new row and its old row.
    pub mean_cosine: f64,
    /// The fitted scale `s`.
    pub scale: f64,
    /// Spread of the per-row cosines after alignment.
    pub cosines: Distribution,
}

/// Fit orthogonal Procrustes of `new` onto `old` on the whole sample (the smaller
/// dimension is zero-padded) and measure the fit. Rows are normalised first for the
/// cosine metric.
pub fn procrustes(old: &Matrix<'_>, new: &Matrix<'_>, metric: Metric) -> Result<Procrustes> {
    check_paired(old, new)?;
    let norm = metric == Metric::Cosine;
    let x = linalg::to_f64(old, None, norm);
    let y = linalg::to_f64(new, None, norm);
    let (w, scale) = super::adapter::procrustes_map(x.as_ref(), y.as_ref())?;
    let mut aligned = linalg::a_b(y.as_ref(), w.as_ref());
    aligned *= faer::Scale(scale);
    let xn = linalg::frob(x.as_ref());
    let diff = &aligned - &x;
    let residual = if xn == 0.0 {
        0.0
    } else {
        linalg::frob(diff.as_ref()) / xn
    };
    let cos: Vec<f64> = (0..x.nrows())
        .map(|r| {
            let a: Vec<f64> = aligned.row(r).iter().copied().collect();
            let b: Vec<f64> = x.row(r).iter().copied().collect();
            linalg::cosine(&a, &b)
        })
        .collect();
    Ok(Procrustes {
        residual,
        mean_cosine: cos.iter().sum::<f64>() / count(cos.len().max(1)),
        scale,
        cosines: Distribution::of(&cos, Some((-1.0, 1.0))),
    })
}

/// Mean cosine between paired rows of two spaces of the same dimension (no alignment):
/// 1 when the new model returns the old vectors (up to length).
pub fn paired_cosine(old: &Matrix<'_>, new: &Matrix<'_>) -> Result<f64> {
    check_paired(old, new)?;
    if old.dim() != new.dim() {
        return Err(CompatError::Shape {
            what: "paired cosine".into(),
            message: format!(
                "dimensions differ ({} vs {}); rows of different spaces cannot be compared directly",
                old.dim(),
                new.dim()
            ),
        });
    }
    let sum: f64 = old
        .iter_rows()
        .zip(new.iter_rows())
        .map(|(a, b)| cosine_f32(a, b))
        .sum();
    Ok(sum / count(old.rows().max(1)))
}

/// Cosine of two `f32` vectors accumulated in `f64` (0 when either is zero).
pub fn cosine_f32(a: &[f32], b: &[f32]) -> f64 {
    let (mut dot, mut na, mut nb) = (0.0f64, 0.0f64, 0.0f64);
    for (x, y) in a.iter().zip(b) {
        let (x, y) = (f64::from(*x), f64::from(*y));
        dot += x * y;
        na += x * x;
        nb += y * y;
    }
    if na == 0.0 || nb == 0.0 {
        0.0
    } else {
        dot / (na.sqrt() * nb.sqrt())
    }
}

/// Vector lengths of one space.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NormStats {
    /// Mean norm.
    pub mean: f64,
    /// Standard deviation of the norms.
    pub std: f64,
    /// Spread of the norms.
    pub distribution: Distribution,
    /// Per-row norms (for plotting), in row order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub per_row: Vec<f32>,
}

/// Norm statistics of the rows of `m`.
#[allow(clippy::cast_possible_truncation)]
pub fn norm_stats(m: &Matrix<'_>) -> NormStats {
    let norms: Vec<f64> = m
        .iter_rows()
        .map(|r| r.iter().map(|x| f64::from(*x).powi(2)).sum::<f64>().sqrt())
        .collect();
    let distribution = Distribution::of(&norms, None);
    NormStats {
        mean: distribution.mean,
        std: distribution.std,
        per_row: norms.iter().map(|&v| v as f32).collect(),
        distribution,
    }
}

/// Rows used to find the principal axes of [`project_2d`] (every row is projected).
pub const PROJECTION_FIT_ROWS: usize = 2000;

/// A 2-D view of a sample: each row (unit-normalised under cosine) projected on the two
/// principal axes of the centred rows, found on up to [`PROJECTION_FIT_ROWS`] rows spread
/// evenly over the sample. Returns `[x0, y0, x1, y1, ...]`; the axes' signs are fixed so
/// the largest loading of each is positive (the same sample gives the same picture).
pub fn project_2d(m: &Matrix<'_>, metric: Metric) -> Result<Vec<f32>> {
    let n = m.rows();
    if n < 3 {
        return Err(CompatError::TooFewRows {
            what: "2-D projection".into(),
            rows: n,
            needed: 3,
            hint: "a sample of at least 3 rows".into(),
        });
    }
    let normalize = metric == Metric::Cosine;
    let fit_rows: Vec<usize> = if n > PROJECTION_FIT_ROWS {
        (0..PROJECTION_FIT_ROWS)
            .map(|i| i * n / PROJECTION_FIT_ROWS)
            .collect()
    } else {
        (0..n).collect()
    };
    let x = linalg::to_f64(m, Some(&fit_rows), normalize);
    let (mean, c) = linalg::center(&x, None);
    let cov = linalg::at_b(c.as_ref(), c.as_ref());
    let (vals, vecs) = linalg::sym_eigen(cov.as_ref(), "2-D projection")?;
    // eigenvalues ascending: the last two columns are the principal axes
    let d = m.dim();
    let mut axes = Vec::with_capacity(2);
    for j in (0..vals.len()).rev().take(2) {
        let mut a: Vec<f64> = (0..d).map(|r| vecs[(r, j)]).collect();
        let big = a
            .iter()
            .copied()
            .max_by(|p, q| p.abs().total_cmp(&q.abs()))
            .unwrap_or(0.0);
        if big < 0.0 {
            a.iter_mut().for_each(|v| *v = -*v);
        }
        axes.push(a);
    }
    while axes.len() < 2 {
        axes.push(vec![0.0; d]);
    }
    let mut out = Vec::with_capacity(2 * n);
    for row in m.iter_rows() {
        let s = if normalize {
            let norm = row
                .iter()
                .map(|v| f64::from(*v).powi(2))
                .sum::<f64>()
                .sqrt();
            if norm > 0.0 { 1.0 / norm } else { 0.0 }
        } else {
            1.0
        };
        for a in &axes {
            let p: f64 = row
                .iter()
                .zip(a)
                .zip(&mean)
                .map(|((v, w), mu)| (f64::from(*v) * s - mu) * w)
                .sum();
            #[allow(clippy::cast_possible_truncation)]
            out.push(p as f32);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compat::{knn, testdata};

    fn close(a: f64, b: f64, tol: f64) -> bool {
        (a - b).abs() <= tol
    }

    #[test]
    fn identical_spaces_score_one() {
        let data = testdata::latent(200, 16, 6, 0.1, 1);
        let m = Matrix::new(&data, 16).unwrap();
        let nn = knn(&m, 10, Metric::Cosine).unwrap();
        let (ov, rc) = neighborhood_scores(&nn, &nn, 9).unwrap();
        assert!(close(ov.mean, 1.0, 1e-12) && close(rc.mean, 1.0, 1e-12));
        assert_eq!(ov.shared_counts[10], 200);
        // Chance level is about k / (n - 1) for recall.
        assert!(rc.baseline < 0.2, "{}", rc.baseline);
        assert!(close(cka(&m, &m, Metric::Cosine).unwrap(), 1.0, 1e-9));
        let p = procrustes(&m, &m, Metric::Cosine).unwrap();
        assert!(
            p.residual < 1e-6 && close(p.mean_cosine, 1.0, 1e-9),
            "{p:?}"
        );
        assert!(close(paired_cosine(&m, &m).unwrap(), 1.0, 1e-6));
    }

    #[test]
    fn hand_computed_overlap_and_recall() {
        // Row 0 shares 1 of 2 neighbours: Jaccard 1/3, recall 1/2; rows 1-3 share both.
        let old = Neighbors::from_flat(2, vec![1, 2, 0, 2, 0, 1, 0, 1]).unwrap();
        let new = Neighbors::from_flat(2, vec![1, 3, 2, 0, 1, 0, 1, 0]).unwrap();
        let (ov, rc) = neighborhood_scores(&old, &new, 0).unwrap();
        assert!(close(ov.mean, (1.0 / 3.0 + 3.0) / 4.0, 1e-12));
        assert!(close(rc.mean, (0.5 + 3.0) / 4.0, 1e-12));
        assert_eq!(rc.shared_counts, vec![0, 1, 3]);
        assert_eq!(rc.per_row, vec![0.5, 1.0, 1.0, 1.0]);
    }

    #[test]
    fn cka_hand_computed_and_invariant_to_rotation() {
        // X = [[1,0],[-1,0],[0,2],[0,-2]] (centred), Y = X with axes swapped and scaled: CKA 1.
        let x = [1.0f32, 0.0, -1.0, 0.0, 0.0, 2.0, 0.0, -2.0];
        let y = [0.0f32, 3.0, 0.0, -3.0, 6.0, 0.0, -6.0, 0.0];
        let (xm, ym) = (Matrix::new(&x, 2).unwrap(), Matrix::new(&y, 2).unwrap());
        assert!(close(cka(&xm, &ym, Metric::Dot).unwrap(), 1.0, 1e-12));
        // Y = [1, -1, 1, -1] (centred): YᵀX = [2, 4], ||YᵀX||² = 20,
        // ||XᵀX||_F = ||diag(2, 8)||_F = sqrt(68), ||YᵀY||_F = 4.
        let y1 = [1.0f32, -1.0, 1.0, -1.0];
        let y1m = Matrix::new(&y1, 1).unwrap();
        let want = 20.0 / (68f64.sqrt() * 4.0);
        assert!(close(cka(&xm, &y1m, Metric::Dot).unwrap(), want, 1e-12));
    }

    #[test]
    fn rotation_is_aligned_exactly() {
        let d = 12;
        let data = testdata::latent(150, d, 12, 0.0, 2);
        let rot = testdata::rotation(d, 3);
        let rotated = testdata::times(&data, d, &rot, d);
        let (o, n) = (
            Matrix::new(&data, d).unwrap(),
            Matrix::new(&rotated, d).unwrap(),
        );
        let p = procrustes(&o, &n, Metric::Dot).unwrap();
        assert!(
            p.residual < 1e-5 && p.mean_cosine > 0.99999 && close(p.scale, 1.0, 1e-5),
            "{p:?}"
        );
        assert!(close(cka(&o, &n, Metric::Dot).unwrap(), 1.0, 1e-9));
        // Without alignment the rows point elsewhere.
        assert!(paired_cosine(&o, &n).unwrap() < 0.5);
        let (ov, _) = neighborhood_scores(
            &knn(&o, 10, Metric::Cosine).unwrap(),
            &knn(&n, 10, Metric::Cosine).unwrap(),
            1,
        )
        .unwrap();
        assert!(ov.mean > 0.99, "{}", ov.mean);
    }

    #[test]
    fn independent_spaces_score_near_baseline() {
        let a = testdata::latent(300, 16, 16, 0.0, 10);
        let b = testdata::latent(300, 16, 16, 0.0, 20);
        let (am, bm) = (Matrix::new(&a, 16).unwrap(), Matrix::new(&b, 16).unwrap());
        let (ov, rc) = neighborhood_scores(
            &knn(&am, 10, Metric::Cosine).unwrap(),
            &knn(&bm, 10, Metric::Cosine).unwrap(),
            4,
        )
        .unwrap();
        // Chance recall is 10/299 ≈ 0.033.
        assert!(
            rc.mean < 0.08 && rc.baseline < 0.08,
            "{} {}",
            rc.mean,
            rc.baseline
        );
        assert!((ov.mean - ov.baseline).abs() < 0.03);
        assert!(cka(&am, &bm, Metric::Cosine).unwrap() < 0.2);
    }

    #[test]
    fn retrieval_recall_counts_relevant_rows() {
        let base = [0.0f32, 1.0, 2.0, 10.0];
        let q = [0.1f32, 9.0];
        let (b, qm) = (Matrix::new(&base, 1).unwrap(), Matrix::new(&q, 1).unwrap());
        // Query 0 top-2 = {0, 1}: relevant {0, 2} -> 1/2; query 1 top-2 = {3, 2}: relevant {3} -> 1.
        let (r, n) = retrieval_recall(&qm, &b, &[vec![0, 2], vec![3]], 2, Metric::L2).unwrap();
        assert_eq!(n, 2);
        assert!(close(r, 0.75, 1e-12));
        // Three relevant rows with k = 2: finding two of them is full recall.
        let (r, _) = retrieval_recall(&qm, &b, &[vec![0, 1, 2], vec![3]], 2, Metric::L2).unwrap();
        assert!(close(r, 1.0, 1e-12));
        assert!(retrieval_recall(&qm, &b, &[vec![9], vec![]], 2, Metric::L2).is_err());
    }

    #[test]
    fn norms_and_distributions() {
        let m = Matrix::new(&[3.0f32, 4.0, 0.0, 1.0, 6.0, 8.0], 2).unwrap();
        let s = norm_stats(&m);
        assert_eq!(s.per_row, vec![5.0, 1.0, 10.0]);
        assert!(close(s.mean, 16.0 / 3.0, 1e-12));
        assert_eq!(s.distribution.p50, 5.0);
        assert_eq!(s.distribution.histogram.counts.iter().sum::<u64>(), 3);
        let h = Histogram::new([0.0, 0.49, 0.5, 1.0], 0.0, 1.0, 2);
        assert_eq!(h.counts, vec![2, 2]);
    }
}
