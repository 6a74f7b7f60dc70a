//! The compatibility report between an old and a new embedding space, the declared
//! compatibility modes it can verify, and the fingerprint check.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use super::ann::{Approximation, KnnPolicy, neighbours};
use super::fit::{FitOptions, FitReport, QueryPairs, fit_adapters};
use super::metrics::{
    self, NormStats, PairedScore, Procrustes, cosine_f32, neighborhood_scores, retrieval_recall,
};
use super::{CompatError, DEFAULT_TOLERANCE, Matrix, Result, SplitMix64};
use crate::space::Metric;

/// How a new space may stand in for an old one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CompatMode {
    /// The new model gives the old vectors (same dimension, paired cosine at tolerance):
    /// nothing to migrate.
    Identical,
    /// New-model queries can search old vectors through a fitted adapter.
    Adapter,
    /// Incompatible: the store must be re-embedded before new-model queries are served.
    None,
}

impl CompatMode {
    /// Name as written in files and reports.
    pub fn as_str(self) -> &'static str {
        match self {
            CompatMode::Identical => "identical",
            CompatMode::Adapter => "adapter",
            CompatMode::None => "none",
        }
    }
}

impl fmt::Display for CompatMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a declared mode must reach to be accepted, and what an adapter needs to serve
/// during a backfill.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ModeThresholds {
    /// `identical`: mean cosine between paired rows (default 0.999).
    pub identical_cosine: f64,
    /// `adapter`: retention of the chosen adapter (default 0.9).
    pub min_retention: f64,
    /// Retention an adapter needs to be chosen and serve new-model queries against the
    /// old space during the backfill, without claiming mode `adapter` (default 0.7).
    pub serve_min_retention: f64,
}

impl Default for ModeThresholds {
    fn default() -> Self {
        ModeThresholds {
            identical_cosine: DEFAULT_TOLERANCE,
            min_retention: 0.9,
            serve_min_retention: 0.7,
        }
    }
}

/// Check a declared compatibility mode against a report: `Ok` when it holds, otherwise
/// [`CompatError::Mode`] saying why and what to declare instead.
pub fn verify_mode(
    declared: CompatMode,
    report: &CompatReport,
    thresholds: &ModeThresholds,
) -> Result<()> {
    let fail = |reason: String| {
        Err(CompatError::Mode {
            declared: declared.as_str().into(),
            reason,
        })
    };
    match declared {
        CompatMode::None => Ok(()),
        CompatMode::Identical => {
            if report.old_dim != report.new_dim {
                return fail(format!(
                    "dimensions differ ({} -> {}); declare `adapter` or `none`",
                    report.old_dim, report.new_dim
                ));
            }
            let cos = report.identical_mean_cosine.unwrap_or(0.0);
            if cos < thresholds.identical_cosine {
                return fail(format!(
                    "mean cosine between paired rows is {cos:.6}, below {}; the models give different vectors, declare `{}`",
                    thresholds.identical_cosine, report.suggested_mode
                ));
            }
            Ok(())
        }
        CompatMode::Adapter => {
            let Some(fit) = &report.adapter else {
                return fail(
                    "no adapter was fitted; run the analysis with adapter fitting on".into(),
                );
            };
            let Some(c) = fit.chosen_candidate() else {
                return fail(format!("{}; declare `none`", fit.summary));
            };
            if c.retention < thresholds.min_retention {
                return fail(format!(
                    "the chosen {} adapter keeps {:.3} of the old model's hits, below min_retention {}: it may serve during the backfill but does not hold mode `adapter`; declare `none` (or lower `min_retention`)",
                    c.kind, c.retention, thresholds.min_retention
                ));
            }
            Ok(())
        }
    }
}

/// Queries embedded by both models, with the sample rows relevant to each.
#[derive(Debug, Clone, Copy)]
pub struct QuerySet<'a> {
    /// Query vectors from the old model (dimension of the old sample).
    pub old: Matrix<'a>,
    /// The same queries from the new model (dimension of the new sample).
    pub new: Matrix<'a>,
    /// Per query, the indices of the sample rows relevant to it.
    pub relevant: &'a [Vec<u32>],
}

/// Options of [`compat`].
#[derive(Debug, Clone)]
pub struct CompatOptions<'a> {
    /// Neighbours per record (default 10).
    pub k: usize,
    /// Metric used to rank neighbours in both spaces (default cosine).
    pub metric: Metric,
    /// Seed of every shuffle and split.
    pub seed: u64,
    /// Optional labelled queries for the retrieval ratio.
    pub queries: Option<QuerySet<'a>>,
    /// Fit and evaluate adapters (default true).
    pub fit_adapters: bool,
    /// Also train adapters on half of the queries (seeded split); the retrieval metrics
    /// then use only the other half. Helps asymmetric models (query/passage prefixes).
    pub train_adapter_on_queries: bool,
    /// Retention the chosen adapter needs for the suggested mode to be `adapter` (see
    /// [`FitOptions::min_retention`]).
    pub min_retention: f64,
    /// Retention an adapter needs to be chosen (see [`FitOptions::serve_min_retention`]).
    pub serve_min_retention: f64,
    /// Retrieval recall an adapter needs to be chosen (see [`FitOptions::min_recall`]).
    pub min_recall: f64,
    /// Paired cosine an `identical` suggestion needs (default 0.999).
    pub identical_tolerance: f64,
    /// Keep per-row values (for plots) in the report (default true).
    pub keep_per_row: bool,
    /// Exact or HNSW neighbours for the overlap and recall (default: exact up to
    /// [`EXACT_UP_TO`](super::EXACT_UP_TO) rows).
    pub knn: KnnPolicy,
}

impl Default for CompatOptions<'_> {
    fn default() -> Self {
        let fit = FitOptions::default();
        CompatOptions {
            k: 10,
            metric: Metric::Cosine,
            seed: fit.seed,
            queries: None,
            fit_adapters: true,
            train_adapter_on_queries: false,
            min_retention: fit.min_retention,
            serve_min_retention: fit.serve_min_retention,
            min_recall: fit.min_recall,
            identical_tolerance: DEFAULT_TOLERANCE,
            keep_per_row: true,
            knn: KnnPolicy::default(),
        }
    }
}

/// Retrieval through each space for a labelled query set.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RetrievalSummary {
    /// Queries with at least one relevant row that were evaluated.
    pub queries: usize,
    /// Mean recall@k of old queries on old vectors.
    pub old_recall: f64,
    /// Mean recall@k of new queries on new vectors.
    pub new_recall: f64,
    /// `new_recall / old_recall` (absent when old recall is 0).
    pub ratio: Option<f64>,
    /// Mean recall@k of adapted new queries on old vectors (when an adapter was chosen).
    pub adapter_recall: Option<f64>,
    /// `adapter_recall / old_recall`.
    pub adapter_ratio: Option<f64>,
}

/// Everything measured about an old/new pair of spaces over one paired sample.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CompatReport {
    /// Paired rows.
    pub n: usize,
    /// Neighbours per record.
    pub k: usize,
    /// Old model dimension.
    pub old_dim: usize,
    /// New model dimension.
    pub new_dim: usize,
    /// Neighbour metric.
    pub metric: Metric,
    /// Jaccard overlap of old and new neighbour sets, with its shuffled baseline.
    pub overlap: PairedScore,
    /// Recall of old neighbours among new ones, with its shuffled baseline.
    pub recall: PairedScore,
    /// Linear CKA.
    pub cka: f64,
    /// Orthogonal Procrustes fit of new onto old (whole sample).
    pub procrustes: Procrustes,
    /// Mean cosine between paired rows (same dimension only).
    pub identical_mean_cosine: Option<f64>,
    /// Norms of the old vectors.
    pub norms_old: NormStats,
    /// Norms of the new vectors.
    pub norms_new: NormStats,
    /// Retrieval with labelled queries.
    pub retrieval: Option<RetrievalSummary>,
    /// Adapter fit summary (weights not included).
    pub adapter: Option<FitReport>,
    /// Every scalar under a stable name (gates read these).
    pub metrics: BTreeMap<String, f64>,
    /// The strongest mode the measurements support.
    pub suggested_mode: CompatMode,
    /// How approximate the neighbour tables behind `overlap` and `recall` are: one entry
    /// per space searched through an HNSW graph (none when the search was exact).
    #[serde(default)]
    pub approximations: Vec<Approximation>,
}

/// Compare the old and new embeddings of the same records (row `i` of each is one record).
pub fn compat(
    old: &Matrix<'_>,
    new: &Matrix<'_>,
    opts: &CompatOptions<'_>,
) -> Result<CompatReport> {
    super::check_paired(old, new)?;
    let (n, k, metric) = (old.rows(), opts.k, opts.metric);
    let (nn_old, approx_old) = neighbours(old, k, metric, &opts.knn, "old")?;
    let (nn_new, approx_new) = neighbours(new, k, metric, &opts.knn, "new")?;
    let approximations = approx_old.into_iter().chain(approx_new).collect();
    let (mut overlap, mut recall) = neighborhood_scores(&nn_old, &nn_new, opts.seed)?;
    drop((nn_old, nn_new));
    let cka = metrics::cka(old, new, metric)?;
    let procrustes = metrics::procrustes(old, new, metric)?;
    let identical_mean_cosine = (old.dim() == new.dim())
        .then(|| metrics::paired_cosine(old, new))
        .transpose()?;
    let mut norms_old = metrics::norm_stats(old);
    let mut norms_new = metrics::norm_stats(new);
    let (q_train, q_eval) = split_queries(old, new, opts)?;
    let adapter = fit_adapter(old, new, opts, q_train.as_ref(), q_eval.as_ref())?;
    let retrieval = q_eval
        .as_ref()
        .map(|q| retrieval(old, new, opts, q, adapter.as_ref()))
        .transpose()?
        .flatten();
    let suggested_mode = if identical_mean_cosine.is_some_and(|c| c >= opts.identical_tolerance) {
        CompatMode::Identical
    } else if adapter
        .as_ref()
        .and_then(FitReport::chosen_candidate)
        .is_some_and(|c| c.holds_mode)
    {
        CompatMode::Adapter
    } else {
        CompatMode::None
    };
    if !opts.keep_per_row {
        for v in [
            &mut overlap.per_row,
            &mut recall.per_row,
            &mut norms_old.per_row,
            &mut norms_new.per_row,
        ] {
            v.clear();
        }
    }
    let mut report = CompatReport {
        n,
        k,
        old_dim: old.dim(),
        new_dim: new.dim(),
        metric,
        overlap,
        recall,
        cka,
        procrustes,
        identical_mean_cosine,
        norms_old,
        norms_new,
        retrieval,
        adapter,
        metrics: BTreeMap::new(),
        suggested_mode,
        approximations,
    };
    report.metrics = report.metric_map();
    Ok(report)
}

/// The labelled queries of `opts`, checked against the sample: `(training pairs,
/// evaluation queries)`. When adapters are fitted on queries, a seeded half of them
/// trains the adapter and the rest evaluates; otherwise all of them evaluate.
fn split_queries(
    old: &Matrix<'_>,
    new: &Matrix<'_>,
    opts: &CompatOptions<'_>,
) -> Result<(Option<TrainQueries>, Option<EvalQueries>)> {
    let Some(q) = &opts.queries else {
        return Ok((None, None));
    };
    super::fit::check_queries(q, old, new)?;
    let rows = q.old.rows();
    let mut q_train = None;
    let mut order: Vec<usize> = (0..rows).collect();
    if opts.fit_adapters && opts.train_adapter_on_queries {
        order = SplitMix64::new(opts.seed ^ 0x7175_6572).permutation(rows);
        let (tr, ev) = order.split_at(rows / 2);
        q_train = Some((gather(&q.old, tr), gather(&q.new, tr)));
        order = ev.to_vec();
    }
    let rel = order.iter().map(|&i| q.relevant[i].clone()).collect();
    let q_eval = (gather(&q.old, &order), gather(&q.new, &order), rel);
    Ok((q_train, Some(q_eval)))
}

/// The adapter search of `opts` (none unless `opts.fit_adapters`), with the training
/// query pairs when there are any; retention is measured on the evaluation queries
/// when there are any, else on held-out passages.
fn fit_adapter(
    old: &Matrix<'_>,
    new: &Matrix<'_>,
    opts: &CompatOptions<'_>,
    q_train: Option<&TrainQueries>,
    q_eval: Option<&EvalQueries>,
) -> Result<Option<FitReport>> {
    if !opts.fit_adapters {
        return Ok(None);
    }
    let pairs = match q_train {
        Some((o, nw)) if !o.is_empty() => Some(QueryPairs {
            old: Matrix::new(o, old.dim())?,
            new: Matrix::new(nw, new.dim())?,
        }),
        _ => None,
    };
    let eval_queries = match q_eval {
        Some((o, nw, rel)) if !rel.is_empty() => Some(QuerySet {
            old: Matrix::new(o, old.dim())?,
            new: Matrix::new(nw, new.dim())?,
            relevant: rel,
        }),
        _ => None,
    };
    let fit = FitOptions {
        k: opts.k,
        metric: opts.metric,
        seed: opts.seed,
        min_retention: opts.min_retention,
        serve_min_retention: opts.serve_min_retention,
        min_recall: opts.min_recall,
        query_pairs: pairs,
        eval_queries,
        ..FitOptions::default()
    };
    Ok(Some(fit_adapters(old, new, &fit)?))
}

/// Recall of the evaluation queries `q` on the old and the new vectors, and through the
/// chosen adapter of `adapter` (new queries on old vectors). `None` without relevance
/// lists.
fn retrieval(
    old: &Matrix<'_>,
    new: &Matrix<'_>,
    opts: &CompatOptions<'_>,
    (qo, qn, rel): &EvalQueries,
    adapter: Option<&FitReport>,
) -> Result<Option<RetrievalSummary>> {
    if rel.is_empty() {
        return Ok(None);
    }
    let (k, metric) = (opts.k, opts.metric);
    let qo = Matrix::new(qo, old.dim())?;
    let qn = Matrix::new(qn, new.dim())?;
    let (old_recall, queries) = retrieval_recall(&qo, old, rel, k, metric)?;
    let (new_recall, _) = retrieval_recall(&qn, new, rel, k, metric)?;
    let ratio = (old_recall > 0.0).then(|| new_recall / old_recall);
    let adapter_recall = match adapter.and_then(|f| f.adapter.as_ref()) {
        Some(a) => {
            let mapped = a.apply_batch(qn.data());
            let m = Matrix::new(&mapped, old.dim())?;
            Some(retrieval_recall(&m, old, rel, k, metric)?.0)
        }
        None => None,
    };
    Ok(Some(RetrievalSummary {
        queries,
        old_recall,
        new_recall,
        ratio,
        adapter_recall,
        adapter_ratio: adapter_recall
            .filter(|_| old_recall > 0.0)
            .map(|r| r / old_recall),
    }))
}

/// Old and new query vectors (flat) used to train the adapter.
type TrainQueries = (Vec<f32>, Vec<f32>);

/// Old query vectors, new query vectors (flat) and relevance lists used for evaluation.
type EvalQueries = (Vec<f32>, Vec<f32>, Vec<Vec<u32>>);

/// Rows `rows` of `m`, flat.
fn gather(m: &Matrix<'_>, rows: &[usize]) -> Vec<f32> {
    rows.iter()
        .flat_map(|&i| m.row(i).iter().copied())
        .collect()
}

impl CompatReport {
    /// The scalar metrics under their stable names.
    ///
    /// Always: `overlap@K`, `overlap@K.baseline`, `recall@K`, `recall@K.baseline`, `cka`,
    /// `procrustes.residual`, `procrustes.mean_cosine`, `norm.old.mean`, `norm.old.std`,
    /// `norm.new.mean`, `norm.new.std`. Same dimension: `identical.mean_cosine`. With a
    /// chosen adapter (its figures only; absent when none was chosen, see
    /// [`CompatReport::unreported`]): `adapter.retention` (share of the old model's hits
    /// it keeps, in `[0, 1]`), `adapter.retrieval_recall@K`,
    /// `adapter.native_retrieval_recall@K` (the old model on the same queries),
    /// `adapter.recall@K` (old neighbours found around adapted held-out rows). With
    /// queries: `retrieval.old_recall@K`, `retrieval.new_recall@K`, `retrieval_ratio@K`,
    /// and with a chosen adapter `adapter.retrieval_ratio@K`. With neighbours from an HNSW
    /// graph: `knn.old.recall_vs_exact` / `knn.new.recall_vs_exact` (the graph's own
    /// recall@K against exact search, so the error of the neighbourhood metrics is known).
    pub fn metric_map(&self) -> BTreeMap<String, f64> {
        let k = self.k;
        let mut m = BTreeMap::new();
        let mut put = |name: String, v: f64| {
            m.insert(name, v);
        };
        put(format!("overlap@{k}"), self.overlap.mean);
        put(format!("overlap@{k}.baseline"), self.overlap.baseline);
        put(format!("recall@{k}"), self.recall.mean);
        put(format!("recall@{k}.baseline"), self.recall.baseline);
        put("cka".into(), self.cka);
        put("procrustes.residual".into(), self.procrustes.residual);
        put("procrustes.mean_cosine".into(), self.procrustes.mean_cosine);
        put("norm.old.mean".into(), self.norms_old.mean);
        put("norm.old.std".into(), self.norms_old.std);
        put("norm.new.mean".into(), self.norms_new.mean);
        put("norm.new.std".into(), self.norms_new.std);
        if let Some(c) = self.identical_mean_cosine {
            put("identical.mean_cosine".into(), c);
        }
        for a in &self.approximations {
            put(format!("knn.{}.recall_vs_exact", a.of), a.recall_vs_exact);
        }
        if let Some(fit) = &self.adapter
            && let Some(c) = fit.chosen_candidate()
        {
            put("adapter.retention".into(), c.retention);
            put(format!("adapter.retrieval_recall@{k}"), c.retrieval_recall);
            put(
                format!("adapter.native_retrieval_recall@{k}"),
                fit.native_retrieval_recall,
            );
            put(format!("adapter.recall@{k}"), c.neighbour_recall);
        }
        if let Some(r) = &self.retrieval {
            put(format!("retrieval.old_recall@{k}"), r.old_recall);
            put(format!("retrieval.new_recall@{k}"), r.new_recall);
            if let Some(x) = r.ratio {
                put(format!("retrieval_ratio@{k}"), x);
            }
            if let Some(x) = r.adapter_ratio {
                put(format!("adapter.retrieval_ratio@{k}"), x);
            }
        }
        m
    }
}

impl CompatReport {
    /// The `adapter.*` metrics this report leaves out, each with why: they describe the
    /// chosen adapter, and none was chosen (or adapters were not fitted). A gate on one
    /// of them fails with that reason ([`super::evaluate_with`]).
    pub fn unreported(&self) -> BTreeMap<String, String> {
        let reason = match &self.adapter {
            Some(fit) if fit.chosen.is_some() => return BTreeMap::new(),
            Some(fit) => format!("no adapter was chosen: {}", fit.summary),
            None => "no adapter was chosen: adapters were not fitted".to_owned(),
        };
        adapter_metric_names(self.k)
            .into_iter()
            .filter(|n| !self.metrics.contains_key(n))
            .map(|n| (n, reason.clone()))
            .collect()
    }
}

/// The names of the chosen adapter's metrics at `k` neighbours.
pub fn adapter_metric_names(k: usize) -> Vec<String> {
    vec![
        "adapter.retention".to_owned(),
        format!("adapter.retrieval_recall@{k}"),
        format!("adapter.native_retrieval_recall@{k}"),
        format!("adapter.recall@{k}"),
        format!("adapter.retrieval_ratio@{k}"),
    ]
}

impl fmt::Display for CompatReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "compatibility of {} paired rows: old {}d -> new {}d, {} neighbours, k = {}",
            self.n,
            self.old_dim,
            self.new_dim,
            self.metric.as_str(),
            self.k
        )?;
        writeln!(f, "  {:<30} {:>10} {:>10}", "metric", "value", "baseline")?;
        for (name, v) in &self.metrics {
            if name.ends_with(".baseline") {
                continue;
            }
            match self.metrics.get(&format!("{name}.baseline")) {
                Some(b) => writeln!(f, "  {name:<30} {v:>10.4} {b:>10.4}")?,
                None => writeln!(f, "  {name:<30} {v:>10.4} {:>10}", "")?,
            }
        }
        for a in &self.approximations {
            writeln!(f, "  {}", a.summary())?;
        }
        if let Some(fit) = &self.adapter {
            fmt_fit(f, fit)?;
        }
        write!(f, "suggested mode: {}", self.suggested_mode)
    }
}

/// The adapter candidates of `fit`, one line each, and the outcome.
fn fmt_fit(f: &mut fmt::Formatter<'_>, fit: &FitReport) -> fmt::Result {
    writeln!(
        f,
        "adapters ({} training rows{}, {} held out; {} {} queries, old model recall@{} {:.4}):",
        fit.train_rows,
        if fit.query_pairs > 0 {
            format!(" + {} query pairs", fit.query_pairs)
        } else {
            String::new()
        },
        fit.holdout_rows,
        fit.eval_queries,
        match fit.eval_source {
            super::fit::EvalSource::HeldOut => "held-out",
            super::fit::EvalSource::Queries => "labelled",
        },
        fit.k,
        fit.native_retrieval_recall
    )?;
    writeln!(
        f,
        "  {:<38} {:>9} {:>8} {:>9} {:>8} {:>9}  ",
        "candidate", "retention", "recall", "nbrs", "cosine", "cost"
    )?;
    for c in &fit.candidates {
        let mark = if Some(c.kind) == fit.chosen {
            "<- chosen"
        } else if c.passes {
            "passes"
        } else {
            ""
        };
        writeln!(
            f,
            "  {:<38} {:>9.4} {:>8.4} {:>9.4} {:>8.4} {:>9}  {mark}",
            c.description,
            c.retention,
            c.retrieval_recall,
            c.neighbour_recall,
            c.holdout_cosine,
            c.cost
        )?;
    }
    writeln!(f, "  {}", fit.summary)
}

/// The worst cosine between a model's canary vectors now (`got`, flat `n * dim`) and the
/// vectors recorded for them (`expected`): 1 when the model is unchanged.
pub fn fingerprint_deviation(expected: &[Vec<f32>], got: &[f32], dim: usize) -> Result<f64> {
    Ok(worst_canary(expected, got, dim)?.1)
}

/// Refuse model drift: `Ok(worst cosine)` when every canary is within `tolerance`
/// ([`DEFAULT_TOLERANCE`] is 0.999), else [`CompatError::Drift`] naming the worst canary.
pub fn check_fingerprint(
    expected: &[Vec<f32>],
    got: &[f32],
    dim: usize,
    tolerance: f64,
) -> Result<f64> {
    let (index, cosine) = worst_canary(expected, got, dim)?;
    if cosine < tolerance {
        return Err(CompatError::Drift {
            index,
            cosine,
            tolerance,
        });
    }
    Ok(cosine)
}

fn worst_canary(expected: &[Vec<f32>], got: &[f32], dim: usize) -> Result<(usize, f64)> {
    let m = Matrix::new(got, dim)?;
    if m.rows() != expected.len() || expected.is_empty() {
        return Err(CompatError::Shape {
            what: "fingerprint".into(),
            message: format!(
                "{} canary vectors recorded but {} given; embed exactly the recorded canary texts",
                expected.len(),
                m.rows()
            ),
        });
    }
    if let Some(v) = expected.iter().find(|v| v.len() != dim) {
        return Err(CompatError::Shape {
            what: "fingerprint".into(),
            message: format!(
                "recorded canary of dimension {} but the model gives {dim}; the model changed, declare a new space",
                v.len()
            ),
        });
    }
    let mut worst = (0, f64::INFINITY);
    for (i, (e, g)) in expected.iter().zip(m.iter_rows()).enumerate() {
        let c = cosine_f32(e, g);
        if c < worst.1 {
            worst = (i, c);
        }
    }
    Ok(worst)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compat::{Verdict, evaluate, evaluate_with, overall, parse_gates, testdata};

    #[test]
    fn identical_spaces() {
        let data = testdata::latent(150, 16, 8, 0.1, 1);
        let m = Matrix::new(&data, 16).unwrap();
        let r = compat(&m, &m, &CompatOptions::default()).unwrap();
        assert_eq!(r.metrics["overlap@10"], 1.0);
        assert_eq!(r.metrics["recall@10"], 1.0);
        assert!(r.metrics["recall@10.baseline"] < 0.2);
        assert!((r.metrics["cka"] - 1.0).abs() < 1e-9);
        assert!(r.metrics["procrustes.residual"] < 1e-6);
        assert!((r.metrics["identical.mean_cosine"] - 1.0).abs() < 1e-9);
        assert_eq!(r.suggested_mode, CompatMode::Identical);
        assert!(verify_mode(CompatMode::Identical, &r, &ModeThresholds::default()).is_ok());
        let text = r.to_string();
        assert!(
            text.contains("overlap@10") && text.contains("suggested mode: identical"),
            "{text}"
        );
        let json = serde_json::to_string(&r).unwrap();
        let back: CompatReport = serde_json::from_str(&json).unwrap();
        assert!(back.metrics.keys().eq(r.metrics.keys()));
        assert!(
            back.metrics
                .values()
                .zip(r.metrics.values())
                .all(|(a, b)| (a - b).abs() < 1e-12)
        );
    }

    #[test]
    fn rotated_space_needs_an_adapter() {
        let d = 16;
        let data = testdata::latent(200, d, 10, 0.05, 2);
        let rotated = testdata::times(&data, d, &testdata::rotation(d, 3), d);
        let (o, n) = (
            Matrix::new(&data, d).unwrap(),
            Matrix::new(&rotated, d).unwrap(),
        );
        let r = compat(&o, &n, &CompatOptions::default()).unwrap();
        assert!(r.metrics["overlap@10"] > 0.99);
        assert!(r.metrics["procrustes.mean_cosine"] > 0.9999);
        assert!(r.metrics["adapter.retention"] > 0.99);
        assert_eq!(r.suggested_mode, CompatMode::Adapter);
        let e = verify_mode(CompatMode::Identical, &r, &ModeThresholds::default()).unwrap_err();
        assert!(e.to_string().contains("declare `adapter`"), "{e}");
        assert!(verify_mode(CompatMode::Adapter, &r, &ModeThresholds::default()).is_ok());
        assert!(r.to_string().contains("<- chosen"));
    }

    #[test]
    fn unrelated_spaces_are_incompatible_and_gated() {
        let a = testdata::latent(200, 12, 12, 0.0, 4);
        let b = testdata::latent(200, 8, 8, 0.0, 5);
        let (o, n) = (Matrix::new(&a, 12).unwrap(), Matrix::new(&b, 8).unwrap());
        let r = compat(&o, &n, &CompatOptions::default()).unwrap();
        assert!((r.metrics["overlap@10"] - r.metrics["overlap@10.baseline"]).abs() < 0.03);
        assert_eq!(r.suggested_mode, CompatMode::None);
        assert!(!r.metrics.contains_key("identical.mean_cosine"));
        let e = verify_mode(CompatMode::Adapter, &r, &ModeThresholds::default()).unwrap_err();
        assert!(e.to_string().contains("declare `none`"), "{e}");
        assert!(verify_mode(CompatMode::None, &r, &ModeThresholds::default()).is_ok());
        let doc: toml::Value =
            toml::from_str("[gates]\n\"recall@10\" = { block_below = 0.5, review_below = 0.9 }\n")
                .unwrap();
        let g = parse_gates(&doc["gates"]).unwrap();
        assert_eq!(overall(&evaluate(&g, &r.metrics).unwrap()), Verdict::Block);
    }

    #[test]
    fn an_adapter_between_the_thresholds_serves_but_does_not_hold_mode_adapter() {
        let (a, b) = testdata::cross_family(500, (48, 72, 48), 1.2, 11);
        let (o, n) = (Matrix::new(&a, 48).unwrap(), Matrix::new(&b, 72).unwrap());
        let r = compat(&o, &n, &CompatOptions::default()).unwrap();
        let fit = r.adapter.as_ref().unwrap();
        let c = fit
            .chosen_candidate()
            .expect("an adapter serves the backfill");
        assert!((0.7..0.9).contains(&c.retention), "{r}");
        assert!(c.passes && !c.holds_mode);
        assert!(fit.adapter.is_some());
        assert_eq!(r.metrics["adapter.retention"], c.retention);
        assert_eq!(r.suggested_mode, CompatMode::None);
        assert!(
            fit.summary.contains("serves during the backfill"),
            "{}",
            fit.summary
        );
        let e = verify_mode(CompatMode::Adapter, &r, &ModeThresholds::default()).unwrap_err();
        assert!(
            e.to_string().contains("may serve during the backfill"),
            "{e}"
        );
        let lower = ModeThresholds {
            min_retention: 0.7,
            ..ModeThresholds::default()
        };
        assert!(verify_mode(CompatMode::Adapter, &r, &lower).is_ok());
        // a serving threshold above its retention: no adapter at all
        let strict = CompatOptions {
            serve_min_retention: 0.9,
            ..CompatOptions::default()
        };
        let r = compat(&o, &n, &strict).unwrap();
        assert_eq!(r.adapter.as_ref().unwrap().chosen, None);
        assert!(!r.metrics.contains_key("adapter.retention"));
    }

    #[test]
    fn a_gate_on_adapter_metrics_fails_when_no_adapter_was_chosen() {
        let a = testdata::latent(200, 12, 12, 0.0, 4);
        let b = testdata::latent(200, 8, 8, 0.0, 5);
        let (o, n) = (Matrix::new(&a, 12).unwrap(), Matrix::new(&b, 8).unwrap());
        let r = compat(&o, &n, &CompatOptions::default()).unwrap();
        let fit = r.adapter.as_ref().unwrap();
        assert_eq!(fit.chosen, None);
        // candidates were scored, but their figures are not the gates' to read
        assert!(!fit.candidates.is_empty());
        assert!(!r.metrics.keys().any(|m| m.starts_with("adapter.")), "{r}");
        let missing = r.unreported();
        assert!(
            missing["adapter.retention"].starts_with("no adapter was chosen: no adapter reaches")
        );
        let doc: toml::Value =
            toml::from_str("[gates]\n\"adapter.retention\" = { block_below = 0.1 }\n").unwrap();
        let g = parse_gates(&doc["gates"]).unwrap();
        let res = evaluate_with(&g, &r.metrics, &missing).unwrap();
        assert_eq!(res[0].verdict, Verdict::Block);
        assert_eq!(res[0].value, None);
        assert!(
            res[0].message.contains("no adapter was chosen"),
            "{}",
            res[0].message
        );
        // a chosen adapter leaves nothing unreported
        let d = 16;
        let data = testdata::latent(200, d, 10, 0.05, 2);
        let rotated = testdata::times(&data, d, &testdata::rotation(d, 3), d);
        let (o, n) = (
            Matrix::new(&data, d).unwrap(),
            Matrix::new(&rotated, d).unwrap(),
        );
        let r = compat(&o, &n, &CompatOptions::default()).unwrap();
        assert!(r.unreported().is_empty());
        let res = evaluate_with(&g, &r.metrics, &r.unreported()).unwrap();
        assert_eq!(res[0].verdict, Verdict::Pass);
    }

    #[test]
    fn query_set_gives_retrieval_ratio() {
        // Relevant row of query q is row q itself; queries are slightly perturbed rows.
        let d = 16;
        let data = testdata::latent(200, d, 10, 0.05, 6);
        let rotated = testdata::times(&data, d, &testdata::rotation(d, 7), d);
        let noise = testdata::latent(40, d, d, 0.0, 8);
        let q_old: Vec<f32> = data[..40 * d]
            .iter()
            .zip(&noise)
            .map(|(x, e)| x + 0.05 * e)
            .collect();
        let q_new = testdata::times(&q_old, d, &testdata::rotation(d, 7), d);
        let relevant: Vec<Vec<u32>> = (0..40).map(|i| vec![i]).collect();
        let opts = CompatOptions {
            queries: Some(QuerySet {
                old: Matrix::new(&q_old, d).unwrap(),
                new: Matrix::new(&q_new, d).unwrap(),
                relevant: &relevant,
            }),
            train_adapter_on_queries: true,
            keep_per_row: false,
            ..CompatOptions::default()
        };
        let (o, n) = (
            Matrix::new(&data, d).unwrap(),
            Matrix::new(&rotated, d).unwrap(),
        );
        let r = compat(&o, &n, &opts).unwrap();
        let ret = r.retrieval.as_ref().unwrap();
        assert_eq!(ret.queries, 20);
        assert!(ret.old_recall > 0.9, "{ret:?}");
        assert!(
            (r.metrics["retrieval_ratio@10"] - 1.0).abs() < 0.06,
            "{:?}",
            r.metrics
        );
        assert!((r.metrics["adapter.retrieval_ratio@10"] - 1.0).abs() < 0.06);
        assert_eq!(r.adapter.as_ref().unwrap().query_pairs, 20);
        assert!(r.overlap.per_row.is_empty());
    }

    #[test]
    fn fingerprint_drift_is_refused() {
        let expected = vec![vec![1.0f32, 0.0], vec![0.0, 1.0]];
        let same = [2.0f32, 0.0, 0.0, 0.5];
        assert!((fingerprint_deviation(&expected, &same, 2).unwrap() - 1.0).abs() < 1e-12);
        let drift = [1.0f32, 0.0, 0.1, 1.0];
        let worst = fingerprint_deviation(&expected, &drift, 2).unwrap();
        assert!((worst - 1.0 / 1.01f64.sqrt()).abs() < 1e-6);
        let e = check_fingerprint(&expected, &drift, 2, DEFAULT_TOLERANCE).unwrap_err();
        assert!(matches!(e, CompatError::Drift { index: 1, .. }), "{e}");
        assert!(e.to_string().contains("declare a new space"));
        assert!(check_fingerprint(&expected, &same, 2, DEFAULT_TOLERANCE).is_ok());
        assert!(fingerprint_deviation(&expected, &same[..2], 2).is_err());
    }

    #[test]
    fn mode_serde_is_lowercase() {
        assert_eq!(
            serde_json::to_string(&CompatMode::None).unwrap(),
            "\"none\""
        );
        let m: CompatMode = serde_json::from_str("\"adapter\"").unwrap();
        assert_eq!(m, CompatMode::Adapter);
    }
}
