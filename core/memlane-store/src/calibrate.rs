//! A re-embed calibrated against the space it replaces, on a real store: the
//! compatibility check (sample, metrics, declared mode, gates), query adapters kept as
//! artifacts of the store, search through an adapter, and paired samples for
//! `memlane compat`. Model fingerprints are in `fingerprint`.
//!
//! The computations live in [`memlane_core::compat`] (pure, shared with the browser);
//! this module reads the samples, calls the embedders and stores the results.

use std::collections::HashMap;

use std::sync::Arc;

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::Float32Type;
use memlane_core::compat::{
    self, Adapter, CompatMode, CompatOptions, Gate, Matrix, ModeThresholds, QuerySet, Verdict,
};
use memlane_core::schema::ID;
use memlane_core::{AdapterRef, Approval, CompatCheck, Space};

use crate::embed::Embedder;
use crate::error::{Result, StoreError};
use crate::sidecar::SideFiles;
use crate::store::{Store, now};
use crate::vectors::embed_checked;

/// Rows embedded by a re-embed's compatibility check unless the step says otherwise.
pub const DEFAULT_SAMPLE: usize = 2000;

/// Write an adapter as `<digest>.json` (content-addressed, so a file never changes
/// under a recorded reference). Returns (file name, digest).
pub(crate) async fn save_adapter(side: &SideFiles, a: &Adapter) -> Result<(String, String)> {
    let json = serde_json::to_vec(a).map_err(|e| StoreError::Internal(format!("adapter: {e}")))?;
    let digest = blake3::hash(&json).to_hex().to_string();
    let file = format!("{digest}.json");
    // one atomic put: a killed run never leaves a torn adapter under its final name
    side.put(&format!("{}/{file}", crate::sidecar::ADAPTERS), json)
        .await?;
    Ok((file, digest))
}

/// Read an adapter and check it is the one recorded.
pub(crate) async fn load_adapter(side: &SideFiles, r: &AdapterRef) -> Result<Adapter> {
    let name = format!("{}/{}", crate::sidecar::ADAPTERS, r.file);
    let path = side.display(&name);
    let bytes = side
        .get(&name)
        .await?
        .ok_or_else(|| StoreError::Storage {
            path: path.clone(),
            message: "the adapter file is gone; re-run the migration's compatibility check (or restore the file)".into(),
        })?
        .bytes;
    let got = blake3::hash(&bytes).to_hex().to_string();
    if got != r.digest {
        return Err(StoreError::Verify(format!(
            "adapter {} was changed outside memlane (blake3 {got}, recorded {}); restore the file or re-run the migration's compatibility check",
            path, r.digest
        )));
    }
    serde_json::from_slice(&bytes)
        .map_err(|e| StoreError::Verify(format!("adapter {path} does not parse: {e}")))
}

/// A paired sample: the same rows' vectors in two spaces.
#[derive(Debug, Clone, Default)]
pub struct PairedSample {
    /// Record ids, in row order.
    pub ids: Vec<String>,
    /// Old-space vectors, row-major.
    pub old: Vec<f32>,
    /// New-space vectors, row-major.
    pub new: Vec<f32>,
}

fn vector_at(b: &RecordBatch, col: &str, i: usize) -> Option<Vec<f32>> {
    let v = b.column_by_name(col)?.as_fixed_size_list();
    v.is_valid(i)
        .then(|| v.value(i).as_primitive::<Float32Type>().values().to_vec())
}

impl Store {
    /// Up to `n` rows (spread evenly over the store) that have vectors in both spaces.
    pub async fn paired_sample(&self, old: &str, new: &str, n: usize) -> Result<PairedSample> {
        let (o, w) = (
            self.space(Some(old))?.clone(),
            self.space(Some(new))?.clone(),
        );
        // rows with both vectors may be a fraction of the store (a re-embed under way):
        // filter first, then spread
        let filter = format!("{} IS NOT NULL AND {} IS NOT NULL", o.column, w.column);
        let total = self.dataset().count_rows(Some(filter.clone())).await?;
        let step = (total / n.max(1)).max(1);
        let mut s = self.dataset().scan();
        s.project(&[ID, o.column.as_str(), w.column.as_str()])?;
        s.filter(&filter)?;
        // streamed: only the sampled rows are kept
        let mut stream = s.try_into_stream().await?;
        let mut out = PairedSample::default();
        let mut k = 0usize;
        while let Some(b) = futures::TryStreamExt::try_next(&mut stream).await? {
            let ids = b.column(0).as_string::<i32>();
            for i in 0..b.num_rows() {
                if k.is_multiple_of(step) && out.ids.len() < n {
                    let (Some(a), Some(c)) =
                        (vector_at(&b, &o.column, i), vector_at(&b, &w.column, i))
                    else {
                        continue;
                    };
                    out.ids.push(ids.value(i).to_owned());
                    out.old.extend_from_slice(&a);
                    out.new.extend_from_slice(&c);
                }
                k += 1;
            }
        }
        Ok(out)
    }

    /// Search space `target` with a query embedded by the model of space `query_space`,
    /// through the adapter the store keeps for that pair (fitted by a re-embed's
    /// compatibility check). The same space on both sides is a plain search.
    pub async fn search_adapted(
        &self,
        target: Option<&str>,
        query_space: &str,
        query: &[f32],
        k: usize,
        filter: Option<&str>,
    ) -> Result<Vec<crate::store::Hit>> {
        let opts = crate::store::SearchOptions::default();
        Ok(self
            .search_adapted_with(target, query_space, query, k, filter, &opts)
            .await?
            .hits)
    }

    /// [`Store::search_adapted`] with search options, saying whether the target
    /// space's vector index answered.
    pub async fn search_adapted_with(
        &self,
        target: Option<&str>,
        query_space: &str,
        query: &[f32],
        k: usize,
        filter: Option<&str>,
        opts: &crate::store::SearchOptions,
    ) -> Result<crate::store::Searched> {
        let target = self.space(target)?.name.clone();
        if target == query_space {
            return self
                .search_with(Some(&target), query, k, filter, opts)
                .await;
        }
        let from = self.space(Some(query_space))?;
        let r = self
            .state()
            .adapters
            .iter()
            .rev()
            .find(|a| a.from == query_space && a.to == target)
            .ok_or_else(|| StoreError::NoAdapter {
                from: query_space.to_owned(),
                to: target.clone(),
                known: self
                    .state()
                    .adapters
                    .iter()
                    .map(|a| format!("{} -> {}", a.from, a.to))
                    .collect::<Vec<_>>()
                    .join(", "),
            })?;
        let a = self.adapter(r).await?;
        if query.len() != from.dimension {
            return Err(StoreError::Input(format!(
                "query vector has dimension {} but space `{query_space}` is {}-d",
                query.len(),
                from.dimension
            )));
        }
        let mapped = a.apply(query);
        self.search_with(Some(&target), &mapped, k, filter, opts)
            .await
    }

    /// The adapter a reference points to (read once per store handle).
    async fn adapter(&self, r: &AdapterRef) -> Result<Arc<Adapter>> {
        if let Ok(cache) = self.adapters.lock()
            && let Some(a) = cache.get(&r.digest)
        {
            return Ok(a.clone());
        }
        let a = Arc::new(load_adapter(self.side_files(), r).await?);
        if let Ok(mut cache) = self.adapters.lock() {
            cache.insert(r.digest.clone(), a.clone());
        }
        Ok(a)
    }
}

/// What a re-embed's compatibility check needs.
pub(crate) struct CheckSpec<'a> {
    pub(crate) old: &'a Space,
    pub(crate) new: &'a Space,
    pub(crate) embedder_name: &'a str,
    pub(crate) embedder: &'a dyn Embedder,
    pub(crate) source: &'a str,
    pub(crate) sample: usize,
    pub(crate) k: usize,
    pub(crate) mode: Option<CompatMode>,
    /// The step's `min_retention` (mode `adapter`) and `serve_min_retention` (an
    /// adapter kept to serve during the backfill).
    pub(crate) thresholds: ModeThresholds,
    pub(crate) gates: &'a [Gate],
    pub(crate) migration: u32,
    pub(crate) file: &'a str,
    pub(crate) approve: Option<&'a str>,
    /// Write the adapter into the store (false in a dry run).
    pub(crate) keep_adapter: bool,
    /// Where the sample's progress goes (phase `sample` while it is embedded, then
    /// `compat` while the spaces are compared and the adapter fitted).
    pub(crate) progress: Option<(crate::ops::ProgressFn, crate::ops::Progress)>,
}

impl CheckSpec<'_> {
    /// Tell the progress callback where the sample stands.
    fn report(&self, phase: &str, done: usize, total: usize) {
        if let Some((f, base)) = &self.progress {
            let mut p = base.clone();
            p.phase = phase.to_owned();
            p.done = done as u64;
            p.total = total as u64;
            f(&p);
        }
    }
}

/// Compare the new space to the old one on a sample before a re-embed backfills:
/// embed up to `sample` rows with the new model, compute the metrics (and fit an
/// adapter), verify the declared mode and evaluate the gates. A block, or a review
/// without approval, is an error and nothing is written. An adapter whose retention
/// reaches `serve_min_retention` is kept (to serve during the backfill) even when it is
/// below the `min_retention` of mode `adapter`, unless that mode was declared (a
/// declared mode that does not hold blocks).
///
/// Also returns the sample's new vectors by (id, passage digest), for the backfill to
/// write instead of embedding those rows again (empty in a dry run).
pub(crate) async fn check_reembed(
    store: &Store,
    c: &CheckSpec<'_>,
) -> Result<(CompatCheck, crate::gradual::SampleVectors)> {
    let batches = crate::engine::scan::spread(
        store.dataset(),
        &[ID, c.source, c.old.column.as_str()],
        c.sample,
    )
    .await?;
    let (mut ids, mut texts, mut old) = (Vec::new(), Vec::new(), Vec::new());
    let mut digests = Vec::new();
    for b in &batches {
        let id = b.column(0).as_string::<i32>();
        let text = b.column(1).as_string::<i32>();
        for i in 0..b.num_rows() {
            if text.is_null(i) {
                continue;
            }
            let Some(v) = vector_at(b, &c.old.column, i) else {
                continue;
            };
            ids.push(id.value(i).to_owned());
            digests.push(c.new.passage_digest(text.value(i)));
            texts.push(format!("{}{}", c.new.passage_prefix, text.value(i)));
            old.extend_from_slice(&v);
        }
    }
    let mut new = Vec::with_capacity(ids.len() * c.new.dimension);
    let bs = c.embedder.batch_size().max(1);
    c.report("sample", 0, texts.len());
    for (k, (t, i)) in texts.chunks(bs).zip(ids.chunks(bs)).enumerate() {
        let refs: Vec<&str> = t.iter().map(String::as_str).collect();
        new.extend(embed_checked(
            c.embedder_name,
            c.embedder,
            &refs,
            c.new,
            i,
            k,
        )?);
        c.report("sample", (k * bs + t.len()).min(texts.len()), texts.len());
    }
    c.report("compat", texts.len(), texts.len());
    let d = c.new.dimension;
    let vectors: crate::gradual::SampleVectors = if c.keep_adapter {
        ids.iter()
            .zip(&digests)
            .enumerate()
            .map(|(j, (id, dg))| ((id.clone(), *dg), new[j * d..(j + 1) * d].to_vec()))
            .collect()
    } else {
        crate::gradual::SampleVectors::new()
    };
    let (mut check, report) = memlane_core::check_pair(
        c.old,
        c.new,
        &old,
        &new,
        c.k,
        (c.mode, &c.thresholds),
        c.gates,
        None,
    )?;
    if let Some(report) = report
        && let (true, Some(fit)) = (c.keep_adapter, report.adapter.as_ref())
        && let (Some(a), Some(chosen)) = (fit.adapter.as_ref(), fit.chosen_candidate())
        && check.verdict != Verdict::Block
    {
        let (file, digest) = save_adapter(store.side_files(), a).await?;
        check.adapter = Some(AdapterRef {
            from: c.new.name.clone(),
            to: c.old.name.clone(),
            kind: chosen.kind.as_str().to_owned(),
            file,
            digest,
            retention: chosen.retention,
            migration: c.migration,
        });
    }
    match check.verdict {
        Verdict::Block => Err(StoreError::GateBlocked {
            file: c.file.to_owned(),
            details: check.to_string(),
            check: Box::new(check),
        }),
        Verdict::Review => match c.approve {
            Some(reason) => {
                check.approval = Some(Approval {
                    reason: reason.to_owned(),
                    by: who(),
                    at: now(),
                });
                Ok((check, vectors))
            }
            None => Err(StoreError::ReviewRequired {
                file: c.file.to_owned(),
                details: check.to_string(),
                check: Box::new(check),
            }),
        },
        Verdict::Pass => Ok((check, vectors)),
    }
}

/// Who approves a review, named the way git names an author: `MEMLANE_APPROVER`;
/// else `GIT_AUTHOR_NAME <GIT_AUTHOR_EMAIL>` (or `GIT_COMMITTER_*`, or git's configured
/// `user.name`/`user.email`); else the CI run's actor (`GITHUB_ACTOR`); else `user@host`.
fn who() -> String {
    let var = |k: &str| std::env::var(k).ok().filter(|v| !v.trim().is_empty());
    if let Some(a) = var("MEMLANE_APPROVER") {
        return a;
    }
    let git = |key: &str| {
        std::process::Command::new("git")
            .args(["config", "--get", key])
            .stdin(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
            .filter(|v| !v.is_empty())
    };
    let name = var("GIT_AUTHOR_NAME")
        .or_else(|| var("GIT_COMMITTER_NAME"))
        .or_else(|| git("user.name"));
    if let Some(name) = name {
        let email = var("GIT_AUTHOR_EMAIL")
            .or_else(|| var("GIT_COMMITTER_EMAIL"))
            .or_else(|| git("user.email"));
        return match email {
            Some(e) => format!("{name} <{e}>"),
            None => name,
        };
    }
    if let Some(actor) = var("GITHUB_ACTOR") {
        return format!("{actor} (GitHub Actions)");
    }
    let user = var("USER")
        .or_else(|| var("USERNAME"))
        .or_else(|| var("LOGNAME"))
        .unwrap_or_else(|| "unknown".into());
    let host = std::fs::read_to_string("/etc/hostname")
        .map(|h| h.trim().to_owned())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".into());
    format!("{user}@{host}")
}

/// Queries with relevant record ids, embedded by both models, as a [`QuerySet`] over
/// a paired sample (ids not in the sample are dropped; queries left without any are
/// skipped).
pub struct Queries {
    /// Old-model query vectors, row-major.
    pub old: Vec<f32>,
    /// New-model query vectors, row-major.
    pub new: Vec<f32>,
    /// Relevant ids per query.
    pub relevant: Vec<Vec<String>>,
}

/// Run the compatibility metrics on a paired sample (and queries), as `memlane compat` does.
pub fn compat_report(
    sample: &PairedSample,
    old: &Space,
    new: &Space,
    k: usize,
    queries: Option<&Queries>,
) -> Result<memlane_core::compat::CompatReport> {
    let om = Matrix::new(&sample.old, old.dimension)?;
    let nm = Matrix::new(&sample.new, new.dimension)?;
    let pos: HashMap<&str, u32> = sample
        .ids
        .iter()
        .enumerate()
        .map(|(i, s)| (s.as_str(), u32::try_from(i).unwrap_or(u32::MAX)))
        .collect();
    let mut rel: Vec<Vec<u32>> = Vec::new();
    let (mut qo, mut qn) = (Vec::new(), Vec::new());
    if let Some(q) = queries {
        for (i, r) in q.relevant.iter().enumerate() {
            let idx: Vec<u32> = r
                .iter()
                .filter_map(|id| pos.get(id.as_str()).copied())
                .collect();
            if idx.is_empty() {
                continue;
            }
            rel.push(idx);
            qo.extend_from_slice(&q.old[i * old.dimension..(i + 1) * old.dimension]);
            qn.extend_from_slice(&q.new[i * new.dimension..(i + 1) * new.dimension]);
        }
    }
    let qs = if rel.is_empty() {
        None
    } else {
        Some(QuerySet {
            old: Matrix::new(&qo, old.dimension)?,
            new: Matrix::new(&qn, new.dimension)?,
            relevant: &rel,
        })
    };
    let opts = CompatOptions {
        k,
        metric: old.metric,
        queries: qs,
        ..CompatOptions::default()
    };
    Ok(compat::compat(&om, &nm, &opts)?)
}
