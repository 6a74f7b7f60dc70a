//! Choosing an adapter: fit every candidate on a training split, measure how well each
//! serves retrieval, keep the best one that clears the thresholds.
//!
//! # Retention: the share of the old model's hits an adapter keeps
//!
//! An adapter maps new-model query vectors into the old space so that the old vectors
//! answer new-model queries while a re-embed backfills. What matters is retrieval, so
//! each candidate is judged on *evaluation queries*, each with the sample rows relevant
//! to it:
//!
//! - the labelled queries of [`FitOptions::eval_queries`] when given (a migration's
//!   query sample: queries embedded by both models, relevant rows indexing the sample);
//! - otherwise the held-out passages, each the query of its own pair: the new-model
//!   vector of held-out row `h` is the query and the old row `h` is its one relevant row
//!   (the adapter never saw `h`).
//!
//! For each query `q` with relevant rows `R(q)`:
//!
//! - the *native hits* `N(q)` are the relevant rows the old model's query vector finds
//!   among its `k` nearest old vectors (what search returned before the upgrade);
//! - the *adapted hits* `A(q)` are the relevant rows the adapted new-model query finds
//!   among its `k` nearest old vectors.
//!
//! `retention = Σ |A(q) ∩ N(q)| / Σ |N(q)|`: the share of the old model's hits that
//! the adapter still finds, in `[0, 1]` by construction (0 when the old model finds
//! nothing). Next to it, `retrieval_recall` (adapted) and `native_retrieval_recall` (old
//! model) are recall@k, `|top-k ∩ R(q)| / min(|R(q)|, k)` averaged over queries, also in
//! `[0, 1]`; `neighbour_recall` (held-out rows only) is the share of a row's `k` old
//! neighbours found around its adapted vector, a diagnostic of how closely the adapter
//! reproduces the old neighbourhoods (a cross-family map seldom does, and need not).
//!
//! Two thresholds: a candidate *passes* (may be chosen, stored and used to serve
//! new-model queries against the old space during the backfill) when its retention
//! reaches [`FitOptions::serve_min_retention`] and its retrieval recall reaches
//! [`FitOptions::min_recall`]; the chosen one *holds mode `adapter`* only when its
//! retention also reaches [`FitOptions::min_retention`]. The best passing candidate is
//! chosen: highest retention, then retrieval recall, then neighbour recall, then the
//! cheaper.

use serde::{Deserialize, Serialize};

use super::adapter::{self, Adapter, AdapterKind, RidgeProblem};
use super::comparison::QuerySet;
use super::linalg::{self, count};
use super::metrics::cosine_f32;
use super::{CompatError, Matrix, Result, SplitMix64, check_paired, knn_queries};
use crate::space::Metric;

/// Extra training pairs: the same texts (typically queries) embedded by both models.
///
/// Asymmetric models (E5's `query:`/`passage:` prefixes, instruction-tuned embedders) map
/// queries to a different region than passages; an adapter fitted on passages alone may
/// serve queries badly, and these pairs teach it that region.
#[derive(Debug, Clone, Copy)]
pub struct QueryPairs<'a> {
    /// Query vectors from the old model.
    pub old: Matrix<'a>,
    /// The same queries from the new model.
    pub new: Matrix<'a>,
}

/// How [`fit_adapters`] splits, fits and chooses.
#[derive(Debug, Clone)]
pub struct FitOptions<'a> {
    /// Results per query (recall@k) and neighbours per record.
    pub k: usize,
    /// Metric of the old space (cosine: rows are normalised before fitting).
    pub metric: Metric,
    /// Seed of the train/held-out split.
    pub seed: u64,
    /// Share of the sample held out for evaluation (clamped so both sides keep rows).
    pub holdout: f64,
    /// Most rows held out (default [`MAX_HOLDOUT`]): each candidate searches every
    /// held-out row against the whole sample exactly, so a 100k-row sample would spend
    /// most of its report on 20k evaluation queries whose estimate 2,000 already give
    /// to about ±0.01.
    pub max_holdout: usize,
    /// Retention the chosen adapter needs to hold mode `adapter` (default 0.9).
    pub min_retention: f64,
    /// Retention a candidate needs to be chosen, stored and used to serve new-model
    /// queries against the old space during a backfill (default 0.7; at most
    /// `min_retention`).
    pub serve_min_retention: f64,
    /// Adapted retrieval recall@k a candidate needs to be chosen (default 0.5).
    pub min_recall: f64,
    /// Candidate families (default: all).
    pub kinds: Vec<AdapterKind>,
    /// Ridge penalties to try, relative to the mean eigenvalue of the input Gram matrix
    /// (default `1e-4 .. 1`). `0` asks for an unregularised fit, refused on small samples.
    pub ridge_alphas: Vec<f64>,
    /// Ranks to try for the low-rank map (default: `out_dim / 16, / 8, / 4, / 2`, each
    /// below `min(in_dim, out_dim)`).
    pub ranks: Vec<usize>,
    /// Extra pairs appended to the training rows.
    pub query_pairs: Option<QueryPairs<'a>>,
    /// Weight of each query pair relative to a sample row (default 1).
    pub query_weight: f64,
    /// Labelled queries that measure retention (relevant rows index the sample);
    /// default: the held-out passages, each the query of its own pair.
    pub eval_queries: Option<QuerySet<'a>>,
}

impl Default for FitOptions<'_> {
    fn default() -> Self {
        FitOptions {
            k: 10,
            metric: Metric::Cosine,
            seed: 0x006d_656d_6c61_6e65,
            holdout: 0.2,
            max_holdout: MAX_HOLDOUT,
            min_retention: 0.9,
            serve_min_retention: 0.7,
            min_recall: 0.5,
            kinds: AdapterKind::ALL.to_vec(),
            ridge_alphas: vec![1e-4, 1e-3, 1e-2, 1e-1, 1.0],
            ranks: Vec::new(),
            query_pairs: None,
            query_weight: 1.0,
            eval_queries: None,
        }
    }
}

/// How one candidate did on the held-out split.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CandidateResult {
    /// Family.
    pub kind: AdapterKind,
    /// Parameters, e.g. `ridge (lambda 1.2e-2)`.
    pub description: String,
    /// Share of the old model's hits that adapted new-model queries still find on the
    /// old vectors, in `[0, 1]` (see the module docs).
    pub retention: f64,
    /// Recall@k of adapted new-model queries on the old vectors, in `[0, 1]`.
    pub retrieval_recall: f64,
    /// Share of a held-out row's `k` old neighbours found around its adapted new vector
    /// (itself excluded), in `[0, 1]`: how closely the old neighbourhoods are reproduced.
    pub neighbour_recall: f64,
    /// Mean cosine between the mapped new vector and the true old vector, held-out rows.
    pub holdout_cosine: f64,
    /// Multiply-adds per applied query.
    pub cost: usize,
    /// Whether it clears the serving thresholds (`serve_min_retention`, `min_recall`),
    /// so that it may be chosen.
    pub passes: bool,
    /// Whether its retention also reaches `min_retention` (mode `adapter`).
    pub holds_mode: bool,
}

/// Which queries measured retention.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EvalSource {
    /// Held-out passages, each the query of its own pair.
    HeldOut,
    /// Labelled queries ([`FitOptions::eval_queries`]).
    Queries,
}

/// Outcome of [`fit_adapters`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FitReport {
    /// Neighbours per record.
    pub k: usize,
    /// Sample rows used for fitting.
    pub train_rows: usize,
    /// Sample rows held out for evaluation.
    pub holdout_rows: usize,
    /// Query pairs appended to the training rows.
    pub query_pairs: usize,
    /// The queries that measured retention.
    pub eval_source: EvalSource,
    /// Evaluation queries with at least one relevant row.
    pub eval_queries: usize,
    /// Recall@k of the old model's queries on the old vectors, same queries and
    /// relevance: the reference the candidates' retention is a share of.
    pub native_retrieval_recall: f64,
    /// Every candidate, in the order fitted.
    pub candidates: Vec<CandidateResult>,
    /// The chosen family, or `None` when no candidate clears the serving thresholds.
    pub chosen: Option<AdapterKind>,
    /// Retention required to hold mode `adapter`.
    pub min_retention: f64,
    /// Retention required to be chosen and serve during a backfill.
    pub serve_min_retention: f64,
    /// Adapted retrieval recall required to be chosen.
    pub min_recall: f64,
    /// One sentence on the outcome.
    pub summary: String,
    /// The chosen adapter (fitted on the training split). Not serialised: save it as its
    /// own artifact with serde.
    #[serde(skip)]
    pub adapter: Option<Adapter>,
}

impl FitReport {
    /// The figures of the chosen adapter (`None` when none was chosen).
    pub fn chosen_candidate(&self) -> Option<&CandidateResult> {
        let kind = self.chosen?;
        self.candidates.iter().find(|c| c.kind == kind)
    }
}

/// Rows a paired sample needs for the metrics and the adapter fit with `k` neighbours
/// (a training and a held-out split that each hold a neighbourhood).
pub fn min_sample_rows(k: usize) -> usize {
    (2 * k + 4).max(20)
}

/// Fit Procrustes, ridge and low-rank adapters from `new` into `old` (paired rows), choose
/// the best one on a held-out split (see the module docs for the measure) and report every
/// candidate. When none clears the thresholds, `chosen` is `None` and `summary` says so.
pub fn fit_adapters(
    old: &Matrix<'_>,
    new: &Matrix<'_>,
    opts: &FitOptions<'_>,
) -> Result<FitReport> {
    check_inputs(old, new, opts)?;
    let norm = opts.metric == Metric::Cosine;
    let (train, held) = split(old.rows(), opts);
    let training = Training::new(old, new, &train, opts, norm);
    let (alpha, rank) = training.tune(opts, new.dim(), old.dim())?;
    let fitted = training.fit(opts, alpha, rank)?;
    let eval = Evaluation::new(old, new, &held, opts)?;
    let candidates = eval.score(&fitted, opts)?;
    let best = best_candidate(&candidates);
    let summary = summary(&candidates, best, &eval, opts);
    Ok(FitReport {
        k: opts.k,
        train_rows: train.len(),
        holdout_rows: held.len(),
        query_pairs: training.query_rows,
        eval_source: eval.source,
        eval_queries: eval.relevant.len(),
        native_retrieval_recall: eval.native_recall,
        chosen: best.map(|i| candidates[i].kind),
        adapter: best.map(|i| fitted[i].clone()),
        candidates,
        min_retention: opts.min_retention,
        serve_min_retention: opts.serve_min_retention,
        min_recall: opts.min_recall,
        summary,
    })
}

/// Refuse a sample too small for `opts.k`, and query pairs that do not pair with it.
fn check_inputs(old: &Matrix<'_>, new: &Matrix<'_>, opts: &FitOptions<'_>) -> Result<()> {
    check_paired(old, new)?;
    let n = old.rows();
    let k = opts.k;
    let needed = min_sample_rows(k);
    if n < needed {
        return Err(CompatError::TooFewRows {
            what: format!("adapter fitting with k = {k}"),
            rows: n,
            needed,
            hint: "embed a larger sample with both models".into(),
        });
    }
    if let Some(q) = &opts.query_pairs
        && (q.old.rows() != q.new.rows() || q.old.dim() != old.dim() || q.new.dim() != new.dim())
    {
        return Err(CompatError::Shape {
            what: "query pairs".into(),
            message: format!(
                "{} x {}d old and {} x {}d new query vectors do not pair with a {}d -> {}d sample; embed the same queries with both models",
                q.old.rows(),
                q.old.dim(),
                q.new.rows(),
                q.new.dim(),
                new.dim(),
                old.dim()
            ),
        });
    }
    if let Some(q) = &opts.eval_queries {
        check_queries(q, old, new)?;
    }
    Ok(())
}

/// Refuse queries whose vectors or relevance lists do not fit the sample (relevant rows
/// must index it).
pub(super) fn check_queries(q: &QuerySet<'_>, old: &Matrix<'_>, new: &Matrix<'_>) -> Result<()> {
    let n = old.rows();
    let fits = q.old.rows() == q.new.rows()
        && q.relevant.len() == q.old.rows()
        && q.old.dim() == old.dim()
        && q.new.dim() == new.dim();
    if !fits || q.relevant.iter().flatten().any(|&r| r as usize >= n) {
        return Err(CompatError::Shape {
            what: "query set".into(),
            message: format!(
                "{} old ({}d), {} new ({}d) query vectors and {} relevance lists do not fit a {n}-row {}d -> {}d sample; embed every query with both models and give one list of sample rows per query",
                q.old.rows(),
                q.old.dim(),
                q.new.rows(),
                q.new.dim(),
                q.relevant.len(),
                new.dim(),
                old.dim()
            ),
        });
    }
    Ok(())
}

/// Default cap on held-out rows ([`FitOptions::max_holdout`]).
pub const MAX_HOLDOUT: usize = 2_000;

/// The `(training, held-out)` rows of an `n`-row sample, each sorted: the first
/// `holdout` share of a seeded permutation (at most `max_holdout` rows) is held out,
/// clamped so that both sides keep a neighbourhood.
fn split(n: usize, opts: &FitOptions<'_>) -> (Vec<usize>, Vec<usize>) {
    let k = opts.k;
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let share = (count(n) * opts.holdout).round() as usize;
    let hold = share.min(opts.max_holdout).clamp(k + 1, n - k - 2);
    let perm = SplitMix64::new(opts.seed).permutation(n);
    let (held, train) = perm.split_at(hold);
    let mut train = train.to_vec();
    train.sort_unstable();
    let mut held = held.to_vec();
    held.sort_unstable();
    (train, held)
}

/// The training matrices (f64): the sample's training rows, then the query pairs with
/// their weight.
struct Training {
    /// Old vectors (the adapters' targets).
    x: faer::Mat<f64>,
    /// New vectors (the adapters' inputs).
    y: faer::Mat<f64>,
    /// Row weights, when query pairs weigh other than 1.
    w: Option<Vec<f64>>,
    /// Rows normalised (cosine).
    norm: bool,
    /// Training rows from the sample.
    sample_rows: usize,
    /// Query pairs appended after them.
    query_rows: usize,
}

impl Training {
    /// The training matrices of the sample rows `train` and `opts.query_pairs`.
    fn new(
        old: &Matrix<'_>,
        new: &Matrix<'_>,
        train: &[usize],
        opts: &FitOptions<'_>,
        norm: bool,
    ) -> Self {
        let (x, y, w) = training_rows(old, new, train, opts, norm);
        Training {
            x,
            y,
            w,
            norm,
            sample_rows: train.len(),
            query_rows: opts.query_pairs.as_ref().map_or(0, |q| q.old.rows()),
        }
    }

    /// The ridge penalty (relative, from `opts.ridge_alphas`) and the low-rank rank
    /// chosen on an inner split of the sample's training rows (query pairs always fit),
    /// for adapters from `d_in` to `d_out` dimensions.
    fn tune(
        &self,
        opts: &FitOptions<'_>,
        d_in: usize,
        d_out: usize,
    ) -> Result<(f64, Option<usize>)> {
        let n = self.sample_rows;
        let inner_val = (n / 5).max(1);
        let inner_perm = SplitMix64::new(opts.seed ^ 0x5eed).permutation(n);
        let mut inner_fit: Vec<usize> = inner_perm[inner_val..].to_vec();
        inner_fit.extend(n..n + self.query_rows);
        inner_fit.sort_unstable();
        let val: Vec<usize> = inner_perm[..inner_val].to_vec();
        let xf = select(&self.x, &inner_fit);
        let yf = select(&self.y, &inner_fit);
        let wf: Option<Vec<f64>> = self
            .w
            .as_ref()
            .map(|w| inner_fit.iter().map(|&i| w[i]).collect());
        let inner = RidgeProblem::new(xf.as_ref(), yf.as_ref(), wf.as_deref(), self.norm)?;
        let xv = select(&self.x, &val);
        let yv = f32_rows(&select(&self.y, &val));

        let want_ridge = opts.kinds.contains(&AdapterKind::Ridge);
        let want_low = opts.kinds.contains(&AdapterKind::LowRank);
        let mut alpha = opts.ridge_alphas.first().copied().unwrap_or(1e-2);
        if (want_ridge || want_low) && opts.ridge_alphas.len() > 1 {
            let mut best = f64::INFINITY;
            for &a in &opts.ridge_alphas {
                let err = relative_error(&inner.ridge(a * inner.scale())?, &yv, &xv);
                if err < best {
                    (best, alpha) = (err, a);
                }
            }
        }
        let ranks = candidate_ranks(opts, d_in, d_out);
        let mut rank = ranks.first().copied();
        if want_low && ranks.len() > 1 {
            let mut best = f64::INFINITY;
            for &r in &ranks {
                let err = relative_error(&inner.low_rank(alpha * inner.scale(), r)?, &yv, &xv);
                if err < best {
                    (best, rank) = (err, Some(r));
                }
            }
        }
        Ok((alpha, rank))
    }

    /// One adapter per candidate family of `opts`, fitted on the whole training split
    /// with the tuned `alpha` and `rank` (no low-rank adapter without a rank).
    fn fit(&self, opts: &FitOptions<'_>, alpha: f64, rank: Option<usize>) -> Result<Vec<Adapter>> {
        let (x, y, w) = (self.x.as_ref(), self.y.as_ref(), self.w.as_deref());
        let full = RidgeProblem::new(x, y, w, self.norm)?;
        let lambda = alpha * full.scale();
        let mut fitted: Vec<Adapter> = Vec::new();
        for kind in AdapterKind::ALL {
            if !opts.kinds.contains(&kind) {
                continue;
            }
            match kind {
                AdapterKind::Procrustes => {
                    fitted.push(adapter::fit_procrustes(x, y, w, self.norm)?);
                }
                AdapterKind::LowRank => {
                    if let Some(r) = rank {
                        fitted.push(full.low_rank(lambda, r)?);
                    }
                }
                AdapterKind::Ridge => fitted.push(full.ridge(lambda)?),
            }
        }
        Ok(fitted)
    }
}

/// The low-rank ranks to try for a `d_in` -> `d_out` map: `opts.ranks`, or by default
/// `d_out / 16, / 8, / 4, / 2`; each at least 1 and below `min(d_in, d_out)`.
fn candidate_ranks(opts: &FitOptions<'_>, d_in: usize, d_out: usize) -> Vec<usize> {
    let max_rank = d_in.min(d_out);
    if opts.ranks.is_empty() {
        [16, 8, 4, 2]
            .iter()
            .map(|f| d_out / f)
            .filter(|&r| r >= 1 && r < max_rank)
            .collect()
    } else {
        opts.ranks
            .iter()
            .copied()
            .filter(|&r| r >= 1 && r < max_rank)
            .collect()
    }
}

/// The index of the best candidate among those that pass: the highest retention, then
/// retrieval recall, then neighbour recall; ties go to the cheaper, then the simpler
/// (earlier fitted).
fn best_candidate(candidates: &[CandidateResult]) -> Option<usize> {
    candidates
        .iter()
        .enumerate()
        .filter(|(_, c)| c.passes)
        .min_by(|(_, a), (_, b)| {
            b.retention
                .total_cmp(&a.retention)
                .then(b.retrieval_recall.total_cmp(&a.retrieval_recall))
                .then(b.neighbour_recall.total_cmp(&a.neighbour_recall))
                .then(a.cost.cmp(&b.cost))
        })
        .map(|(i, _)| i)
}

/// One sentence on the outcome: what the chosen candidate keeps and whether it holds
/// mode `adapter`, or why none was chosen.
fn summary(
    candidates: &[CandidateResult],
    best: Option<usize>,
    eval: &Evaluation<'_>,
    opts: &FitOptions<'_>,
) -> String {
    let (k, native, on) = (opts.k, eval.native_recall, eval.describe());
    if let Some(i) = best {
        let c = &candidates[i];
        let mode = if c.holds_mode {
            "it holds mode `adapter`".to_owned()
        } else {
            format!(
                "it serves during the backfill but is below {} for mode `adapter`",
                opts.min_retention
            )
        };
        return format!(
            "adapter {} keeps {:.1}% of the old model's hits (recall@{k} {:.3}, old model {native:.3}) on {on}; {mode}",
            c.description,
            100.0 * c.retention,
            c.retrieval_recall,
        );
    }
    let top = candidates
        .iter()
        .max_by(|a, b| a.retention.total_cmp(&b.retention));
    match top {
        Some(c) => format!(
            "no adapter reaches retention {:.2} with recall@{k} >= {:.2} on {on}: best was {} (retention {:.3}, recall@{k} {:.3}, old model {native:.3}); compatibility mode is none, re-embed the store",
            opts.serve_min_retention,
            opts.min_recall,
            c.description,
            c.retention,
            c.retrieval_recall,
        ),
        None => "no adapter was fitted (no candidate kinds); compatibility mode is none".into(),
    }
}

/// Training matrices: the sample's training rows, then the query pairs; weights only when
/// query pairs carry a weight other than 1.
fn training_rows(
    old: &Matrix<'_>,
    new: &Matrix<'_>,
    train: &[usize],
    opts: &FitOptions<'_>,
    norm: bool,
) -> (faer::Mat<f64>, faer::Mat<f64>, Option<Vec<f64>>) {
    let xs = linalg::to_f64(old, Some(train), norm);
    let ys = linalg::to_f64(new, Some(train), norm);
    let Some(q) = &opts.query_pairs else {
        return (xs, ys, None);
    };
    let xq = linalg::to_f64(&q.old, None, norm);
    let yq = linalg::to_f64(&q.new, None, norm);
    let stack = |a: &faer::Mat<f64>, b: &faer::Mat<f64>| {
        faer::Mat::from_fn(a.nrows() + b.nrows(), a.ncols(), |r, c| {
            if r < a.nrows() {
                a[(r, c)]
            } else {
                b[(r - a.nrows(), c)]
            }
        })
    };
    let w = ((opts.query_weight - 1.0).abs() > f64::EPSILON).then(|| {
        let mut w = vec![1.0; train.len()];
        w.extend(std::iter::repeat_n(
            opts.query_weight.max(0.0),
            q.old.rows(),
        ));
        w
    });
    (stack(&xs, &xq), stack(&ys, &yq), w)
}

fn select(m: &faer::Mat<f64>, rows: &[usize]) -> faer::Mat<f64> {
    faer::Mat::from_fn(rows.len(), m.ncols(), |r, c| m[(rows[r], c)])
}

#[allow(clippy::cast_possible_truncation)]
fn f32_rows(m: &faer::Mat<f64>) -> Vec<f32> {
    let mut v = Vec::with_capacity(m.nrows() * m.ncols());
    for r in 0..m.nrows() {
        v.extend(m.row(r).iter().map(|x| *x as f32));
    }
    v
}

/// `Σ ||a(y) − x||² / Σ ||x − mean(x)||²` over validation rows.
fn relative_error(a: &Adapter, y: &[f32], x: &faer::Mat<f64>) -> f64 {
    let pred = a.apply_batch(y);
    let d = x.ncols();
    let mean: Vec<f64> = (0..d)
        .map(|c| (0..x.nrows()).map(|r| x[(r, c)]).sum::<f64>() / count(x.nrows().max(1)))
        .collect();
    let (mut num, mut den) = (0.0, 0.0);
    for (r, p) in pred.chunks_exact(d).enumerate() {
        for c in 0..d {
            num += (f64::from(p[c]) - x[(r, c)]).powi(2);
            den += (x[(r, c)] - mean[c]).powi(2);
        }
    }
    if den > 0.0 { num / den } else { num }
}

/// Everything the candidates are judged against, computed once: the evaluation
/// queries with the old model's hits, and the held-out rows' old neighbours.
struct Evaluation<'m> {
    old: Matrix<'m>,
    k: usize,
    metric: Metric,
    source: EvalSource,
    /// New-model query vectors (flat), one per entry of `relevant`.
    queries_new: Vec<f32>,
    /// Relevant sample rows per query (none empty).
    relevant: Vec<Vec<u32>>,
    /// Per query, the relevant rows the old model's query finds in its top `k`.
    native_hits: Vec<Vec<u32>>,
    /// Recall@k of the old model's queries.
    native_recall: f64,
    held: Vec<usize>,
    new_held: Vec<f32>,
    old_held: Vec<f32>,
    /// The `k` old neighbours of each held-out row (itself excluded).
    truth: Vec<u32>,
}

impl<'m> Evaluation<'m> {
    fn new(
        old: &Matrix<'m>,
        new: &Matrix<'_>,
        held: &[usize],
        opts: &FitOptions<'_>,
    ) -> Result<Self> {
        let (k, metric) = (opts.k, opts.metric);
        let old_held = gather(old, held);
        let new_held = gather(new, held);
        let truth =
            neighbours_excluding(&Matrix::new(&old_held, old.dim())?, old, held, k, metric)?;
        let labelled = opts
            .eval_queries
            .filter(|q| q.relevant.iter().any(|r| !r.is_empty()));
        let (source, queries_old, queries_new, relevant) = match &labelled {
            Some(q) => {
                let keep: Vec<usize> = (0..q.relevant.len())
                    .filter(|&i| !q.relevant[i].is_empty())
                    .collect();
                let rel: Vec<Vec<u32>> = keep.iter().map(|&i| q.relevant[i].clone()).collect();
                let (qo, qn) = (gather(&q.old, &keep), gather(&q.new, &keep));
                (EvalSource::Queries, qo, qn, rel)
            }
            None => {
                let rel: Vec<Vec<u32>> = held.iter().map(|&h| vec![row_id(h)]).collect();
                (EvalSource::HeldOut, old_held.clone(), new_held.clone(), rel)
            }
        };
        let queries = Matrix::new(&queries_old, old.dim())?;
        let native_hits = hits(&queries, old, &relevant, k, metric)?;
        let native_recall = mean_recall(&native_hits, &relevant, k);
        Ok(Evaluation {
            old: *old,
            k,
            metric,
            source,
            queries_new,
            relevant,
            native_hits,
            native_recall,
            held: held.to_vec(),
            new_held,
            old_held,
            truth,
        })
    }

    /// What the evaluation queries were, for summaries.
    fn describe(&self) -> String {
        match self.source {
            EvalSource::HeldOut => format!(
                "{} held-out passages as their own queries",
                self.relevant.len()
            ),
            EvalSource::Queries => format!("{} labelled queries", self.relevant.len()),
        }
    }

    /// How each fitted adapter serves the evaluation queries, against the thresholds of
    /// `opts`.
    fn score(&self, fitted: &[Adapter], opts: &FitOptions<'_>) -> Result<Vec<CandidateResult>> {
        let mut candidates = Vec::new();
        for a in fitted {
            let (retention, recall) = self.retrieval(a)?;
            let (neighbour_recall, cos) = self.neighbourhoods(a)?;
            candidates.push(CandidateResult {
                kind: a.kind(),
                description: a.describe(),
                retention,
                retrieval_recall: recall,
                neighbour_recall,
                holdout_cosine: cos,
                cost: a.cost(),
                passes: retention >= opts.serve_min_retention && recall >= opts.min_recall,
                holds_mode: retention >= opts.min_retention,
            });
        }
        Ok(candidates)
    }

    /// `(retention, retrieval recall@k)` of adapted new-model queries on the old vectors.
    fn retrieval(&self, a: &Adapter) -> Result<(f64, f64)> {
        let mapped = a.apply_batch(&self.queries_new);
        let got = hits(
            &Matrix::new(&mapped, self.old.dim())?,
            &self.old,
            &self.relevant,
            self.k,
            self.metric,
        )?;
        Ok((
            kept_share(&self.native_hits, &got),
            mean_recall(&got, &self.relevant, self.k),
        ))
    }

    /// `(neighbour recall, mean cosine of mapped vs true old vectors)` on the held-out
    /// rows.
    fn neighbourhoods(&self, a: &Adapter) -> Result<(f64, f64)> {
        let mapped = a.apply_batch(&self.new_held);
        let d = self.old.dim();
        let got = neighbours_excluding(
            &Matrix::new(&mapped, d)?,
            &self.old,
            &self.held,
            self.k,
            self.metric,
        )?;
        let cos = mapped
            .chunks_exact(d)
            .zip(self.old_held.chunks_exact(d))
            .map(|(a, b)| cosine_f32(a, b))
            .sum::<f64>()
            / count(self.held.len().max(1));
        Ok((recall(&self.truth, &got, self.k), cos))
    }
}

/// Rows `rows` of `m`, flat.
fn gather(m: &Matrix<'_>, rows: &[usize]) -> Vec<f32> {
    rows.iter()
        .flat_map(|&i| m.row(i).iter().copied())
        .collect()
}

fn row_id(i: usize) -> u32 {
    u32::try_from(i).unwrap_or(u32::MAX)
}

/// Per query, its relevant rows among its `k` nearest `base` rows.
fn hits(
    queries: &Matrix<'_>,
    base: &Matrix<'_>,
    relevant: &[Vec<u32>],
    k: usize,
    metric: Metric,
) -> Result<Vec<Vec<u32>>> {
    let nn = knn_queries(queries, base, k, metric)?;
    Ok(relevant
        .iter()
        .enumerate()
        .map(|(q, rel)| {
            rel.iter()
                .copied()
                .filter(|r| nn.row(q).contains(r))
                .collect()
        })
        .collect())
}

/// Mean recall@k, `|hits| / min(|relevant|, k)` per query (0 without queries).
fn mean_recall(hits: &[Vec<u32>], relevant: &[Vec<u32>], k: usize) -> f64 {
    let sum: f64 = hits
        .iter()
        .zip(relevant)
        .map(|(h, r)| count(h.len()) / count(r.len().min(k).max(1)))
        .sum();
    sum / count(relevant.len().max(1))
}

/// `Σ |got ∩ native| / Σ |native|`: the share of the native hits also found, in
/// `[0, 1]` (0 when there are no native hits).
fn kept_share(native: &[Vec<u32>], got: &[Vec<u32>]) -> f64 {
    let total: usize = native.iter().map(Vec::len).sum();
    let kept: usize = native
        .iter()
        .zip(got)
        .map(|(n, g)| n.iter().filter(|r| g.contains(r)).count())
        .sum();
    if total == 0 {
        0.0
    } else {
        count(kept) / count(total)
    }
}

/// `k` nearest rows of `base` for each query, dropping the query's own row `rows[q]`.
fn neighbours_excluding(
    queries: &Matrix<'_>,
    base: &Matrix<'_>,
    rows: &[usize],
    k: usize,
    metric: Metric,
) -> Result<Vec<u32>> {
    let nn = knn_queries(queries, base, k + 1, metric)?;
    let mut out = Vec::with_capacity(rows.len() * k);
    for (q, &own) in rows.iter().enumerate() {
        let own = row_id(own);
        out.extend(nn.row(q).iter().copied().filter(|&j| j != own).take(k));
    }
    Ok(out)
}

/// Mean share of `truth`'s rows found in `got` (both flat, `k` per row).
fn recall(truth: &[u32], got: &[u32], k: usize) -> f64 {
    let rows = truth.len() / k;
    let hits: usize = truth
        .chunks_exact(k)
        .zip(got.chunks_exact(k))
        .map(|(t, g)| t.iter().filter(|x| g.contains(x)).count())
        .sum();
    count(hits) / count((rows * k).max(1))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compat::testdata;

    #[test]
    fn rotation_is_recovered_by_procrustes() {
        let d = 16;
        let data = testdata::latent(240, d, 10, 0.05, 1);
        let rotated = testdata::times(&data, d, &testdata::rotation(d, 2), d);
        let (o, n) = (
            Matrix::new(&data, d).unwrap(),
            Matrix::new(&rotated, d).unwrap(),
        );
        let r = fit_adapters(&o, &n, &FitOptions::default()).unwrap();
        let p = &r.candidates[0];
        assert_eq!(p.kind, AdapterKind::Procrustes);
        assert!(p.retrieval_recall > 0.99 && p.retention > 0.99, "{r:#?}");
        assert!(p.neighbour_recall > 0.99 && p.holds_mode, "{r:#?}");
        assert!(p.holdout_cosine > 0.9999, "{r:#?}");
        assert!(r.native_retrieval_recall > 0.99);
        assert_eq!(r.eval_source, EvalSource::HeldOut);
        assert_eq!(r.eval_queries, r.holdout_rows);
        assert!(r.chosen.is_some());
        assert_eq!(r.holdout_rows + r.train_rows, 240);
        let a = r.adapter.unwrap();
        let mapped = a.apply(n.row(0));
        assert!(cosine_f32(&mapped, o.row(0)) > 0.9999);
    }

    #[test]
    fn dimension_change_is_bridged_by_ridge_or_low_rank() {
        // 48 -> 32 random projection of rank-12 data: linear maps can undo it.
        let data = testdata::latent(300, 48, 12, 0.02, 3);
        let new = testdata::times(&data, 48, &testdata::gaussian(48, 32, 4), 32);
        let (o, n) = (
            Matrix::new(&data, 48).unwrap(),
            Matrix::new(&new, 32).unwrap(),
        );
        let r = fit_adapters(&o, &n, &FitOptions::default()).unwrap();
        let chosen = r.chosen.expect("an adapter");
        assert_ne!(chosen, AdapterKind::Procrustes, "{r:#?}");
        let best = r.candidates.iter().find(|c| c.kind == chosen).unwrap();
        let procrustes = r
            .candidates
            .iter()
            .find(|c| c.kind == AdapterKind::Procrustes)
            .unwrap();
        assert!(
            best.neighbour_recall > 0.8 && best.retention >= 0.9,
            "{r:#?}"
        );
        assert!(
            best.neighbour_recall > procrustes.neighbour_recall,
            "{r:#?}"
        );
        assert_eq!(r.adapter.unwrap().in_dim(), 32);
    }

    #[test]
    fn retention_is_a_share_where_the_old_ratio_exceeded_one() {
        // the new space distorts neighbourhoods (a badly conditioned map) that a linear
        // adapter undoes: adapted neighbour recall beats the new model's own, so the
        // old measure (their ratio) read above 1
        let (a, b) = testdata::cross_family(500, (48, 72, 48), 0.05, 11);
        let (o, n) = (Matrix::new(&a, 48).unwrap(), Matrix::new(&b, 72).unwrap());
        let r = fit_adapters(&o, &n, &FitOptions::default()).unwrap();
        let nn = |m: &Matrix<'_>| crate::compat::knn(m, 10, Metric::Cosine).unwrap();
        let (_, native) = crate::compat::neighborhood_scores(&nn(&o), &nn(&n), 1).unwrap();
        let best = r.chosen_candidate().expect("an adapter");
        assert!(best.neighbour_recall / native.mean > 1.2, "{r:#?}");
        for c in &r.candidates {
            for v in [c.retention, c.retrieval_recall, c.neighbour_recall] {
                assert!((0.0..=1.0).contains(&v), "{c:?}");
            }
        }
        assert!(best.retention > 0.99, "{r:#?}");
    }

    #[test]
    fn cross_family_upgrade_gets_the_ridge_adapter() {
        // 48-d old, 72-d new: a random badly conditioned linear map plus noise
        let (a, b) = testdata::cross_family(500, (48, 72, 48), 0.1, 11);
        let (o, n) = (Matrix::new(&a, 48).unwrap(), Matrix::new(&b, 72).unwrap());
        let r = fit_adapters(&o, &n, &FitOptions::default()).unwrap();
        assert_eq!(r.chosen, Some(AdapterKind::Ridge), "{r:#?}");
        let ridge = r.chosen_candidate().unwrap();
        assert!(ridge.passes && ridge.holds_mode, "{r:#?}");
        let procrustes = &r.candidates[0];
        assert_eq!(procrustes.kind, AdapterKind::Procrustes);
        assert!(
            ridge.neighbour_recall > procrustes.neighbour_recall + 0.2,
            "{r:#?}"
        );
        assert!(r.summary.contains("holds mode `adapter`"), "{}", r.summary);
        assert_eq!(r.adapter.unwrap().in_dim(), 72);
    }

    #[test]
    fn labelled_queries_measure_retention_when_given() {
        // queries: perturbed sample rows, each relevant to its own row
        let (a, b) = testdata::cross_family(300, (16, 24, 16), 0.1, 3);
        let (o, n) = (Matrix::new(&a, 16).unwrap(), Matrix::new(&b, 24).unwrap());
        let rel: Vec<Vec<u32>> = (0..30).map(|i| vec![i * 3]).chain([vec![]]).collect();
        let pick = |m: &Matrix<'_>| -> Vec<f32> {
            (0..31)
                .flat_map(|i| m.row((i * 3) % 300).iter().map(|x| x * 1.01))
                .collect()
        };
        let (qo, qn) = (pick(&o), pick(&n));
        let opts = FitOptions {
            eval_queries: Some(QuerySet {
                old: Matrix::new(&qo, 16).unwrap(),
                new: Matrix::new(&qn, 24).unwrap(),
                relevant: &rel,
            }),
            ..FitOptions::default()
        };
        let r = fit_adapters(&o, &n, &opts).unwrap();
        assert_eq!((r.eval_source, r.eval_queries), (EvalSource::Queries, 30));
        assert!(r.native_retrieval_recall > 0.99, "{r:#?}");
        assert!(r.summary.contains("30 labelled queries"), "{}", r.summary);
        let bad = [vec![300u32]];
        let opts = FitOptions {
            eval_queries: Some(QuerySet {
                old: Matrix::new(&qo[..16], 16).unwrap(),
                new: Matrix::new(&qn[..24], 24).unwrap(),
                relevant: &bad,
            }),
            ..FitOptions::default()
        };
        let e = fit_adapters(&o, &n, &opts).unwrap_err().to_string();
        assert!(e.contains("one list of sample rows per query"), "{e}");
    }

    #[test]
    fn unrelated_spaces_get_no_adapter() {
        let a = testdata::latent(200, 16, 16, 0.0, 5);
        let b = testdata::latent(200, 16, 16, 0.0, 6);
        let (o, n) = (Matrix::new(&a, 16).unwrap(), Matrix::new(&b, 16).unwrap());
        let r = fit_adapters(&o, &n, &FitOptions::default()).unwrap();
        assert_eq!(r.chosen, None, "{r:#?}");
        assert!(r.adapter.is_none());
        assert!(r.summary.contains("mode is none"), "{}", r.summary);
    }

    #[test]
    fn query_pairs_are_appended_and_checked() {
        let d = 8;
        let data = testdata::latent(120, d, 8, 0.05, 7);
        let rot = testdata::rotation(d, 8);
        let rotated = testdata::times(&data, d, &rot, d);
        let q = testdata::latent(30, d, 8, 0.05, 9);
        let qr = testdata::times(&q, d, &rot, d);
        let (o, n) = (
            Matrix::new(&data, d).unwrap(),
            Matrix::new(&rotated, d).unwrap(),
        );
        let opts = FitOptions {
            query_pairs: Some(QueryPairs {
                old: Matrix::new(&q, d).unwrap(),
                new: Matrix::new(&qr, d).unwrap(),
            }),
            query_weight: 2.0,
            ..FitOptions::default()
        };
        let r = fit_adapters(&o, &n, &opts).unwrap();
        assert_eq!(r.query_pairs, 30);
        // Procrustes and ridge recover the rotation; ties go to the simpler Procrustes.
        let good = |k| {
            r.candidates
                .iter()
                .find(|c| c.kind == k)
                .unwrap()
                .neighbour_recall
                > 0.95
        };
        assert!(
            good(AdapterKind::Procrustes) && good(AdapterKind::Ridge),
            "{r:#?}"
        );
        assert_eq!(r.chosen, Some(AdapterKind::Procrustes));
        let bad = FitOptions {
            query_pairs: Some(QueryPairs {
                old: Matrix::new(&q[..16], d).unwrap(),
                new: Matrix::new(&qr, d).unwrap(),
            }),
            ..FitOptions::default()
        };
        assert!(
            fit_adapters(&o, &n, &bad)
                .unwrap_err()
                .to_string()
                .contains("same queries")
        );
    }

    #[test]
    fn unregularised_candidate_is_refused_on_small_samples() {
        let data = testdata::latent(40, 24, 24, 0.1, 3);
        let new = testdata::times(&data, 24, &testdata::gaussian(24, 16, 4), 16);
        let (o, n) = (
            Matrix::new(&data, 24).unwrap(),
            Matrix::new(&new, 16).unwrap(),
        );
        let opts = FitOptions {
            ridge_alphas: vec![0.0],
            ..FitOptions::default()
        };
        let e = fit_adapters(&o, &n, &opts).unwrap_err();
        assert!(
            matches!(e, CompatError::Unregularized { needed: 49, .. }),
            "{e}"
        );
    }
}
