//! What an apply did to retrieval: the context-loss report and the drift of every
//! space between two versions.

use std::collections::{HashMap, HashSet};

use arrow::array::{Array, AsArray};
use arrow::datatypes::Float32Type;
use futures::TryStreamExt;
use lance::Dataset;
use memlane_core::schema::{CONTENT, ID};
use memlane_core::{Space, StoreState};
use serde::{Deserialize, Serialize};

use crate::error::Result;

use super::compare::compare_versions;
use super::has;

/// The drift of one space between the compared versions.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SpaceDrift {
    /// Space name.
    pub space: String,
    /// Whether its recorded identity (model, revision, dimension...) changed too.
    pub identity_changed: bool,
    /// Statistics and the MMD² test.
    pub drift: memlane_core::drift::Drift,
}

/// Records sampled for the neighbourhoods of the context-loss report.
pub(crate) const CONTEXT_SAMPLE: usize = 1000;

/// The context-loss report of an apply from `before` to `after` (see
/// [`memlane_core::ContextLoss`]): one scan of ids and content per version, and the
/// neighbourhoods of up to 1000 records spread over the store in the active space
/// before and after.
pub(crate) async fn context_loss(
    before: &Dataset,
    before_state: &StoreState,
    after: &Dataset,
    after_state: &StoreState,
) -> Result<memlane_core::ContextLoss> {
    let k = 10usize;
    let with_content = has(before, CONTENT) && has(after, CONTENT);
    let audit = compare_versions(before, after, with_content).await?;
    let records_before = before.count_rows(None).await? as u64;
    let records_lost = audit.lost();
    let content_changed = audit.changed();
    let mut out = memlane_core::ContextLoss {
        version_before: before.version().version,
        version_after: after.version().version,
        records_before,
        records_lost,
        content_changed,
        space_before: before_state.active_space.clone(),
        space_after: after_state.active_space.clone(),
        sample: 0,
        k,
        neighbours_kept: None,
        context_kept: 1.0,
    };
    #[allow(clippy::cast_precision_loss)]
    let survive_share = if records_before == 0 {
        1.0
    } else {
        1.0 - records_lost as f64 / records_before as f64
    };
    out.context_kept = survive_share;
    let (Some(sb), Some(sa)) = (before_state.active(), after_state.active()) else {
        return Ok(out);
    };
    if !has(before, &sb.column) || !has(after, &sa.column) {
        return Ok(out);
    }
    let (ids, old) = sample_before(before, sb, k).await?;
    let n = ids.len();
    if n <= k + 1 {
        return Ok(out);
    }
    let after_vec = vectors_after(after, sa, &ids).await?;
    let mean = neighbours_kept(&ids, &old, sb, &after_vec, sa, k)?;
    out.sample = n;
    out.neighbours_kept = Some(mean);
    out.context_kept = mean;
    Ok(out)
}

/// The usable (finite, non-zero) vector at row `i` of a vector column.
fn usable(v: &arrow::array::FixedSizeListArray, i: usize) -> Option<Vec<f32>> {
    if !v.is_valid(i) {
        return None;
    }
    let x = v.value(i).as_primitive::<Float32Type>().values().to_vec();
    (x.iter().all(|f| f.is_finite()) && x.iter().any(|f| *f != 0.0)).then_some(x)
}

/// The sample: up to [`CONTEXT_SAMPLE`] records spread over `before` with a usable
/// vector in `space` (ids, and the vectors row-major). Empty when too few for `k`.
async fn sample_before(
    before: &Dataset,
    space: &Space,
    k: usize,
) -> Result<(Vec<String>, Vec<f32>)> {
    let total = before.count_rows(None).await?;
    let want = CONTEXT_SAMPLE.min(total);
    if want <= k + 1 {
        return Ok((vec![], vec![]));
    }
    let idx: Vec<u64> = (0..want).map(|i| (i * total / want) as u64).collect();
    let proj = before.schema().project(&[ID, space.column.as_str()])?;
    let b = before.take(&idx, std::sync::Arc::new(proj)).await?;
    let (ids, v) = (
        b.column(0).as_string::<i32>(),
        b.column(1).as_fixed_size_list(),
    );
    let mut sample_ids = Vec::new();
    let mut old = Vec::new();
    for i in 0..b.num_rows() {
        if let Some(x) = usable(v, i) {
            sample_ids.push(ids.value(i).to_owned());
            old.extend_from_slice(&x);
        }
    }
    Ok((sample_ids, old))
}

/// The usable vectors in `space` of the records `ids` in `after`, by id.
pub(crate) async fn vectors_after(
    after: &Dataset,
    space: &Space,
    ids: &[String],
) -> Result<HashMap<String, Vec<f32>>> {
    let list = ids
        .iter()
        .map(|s| format!("'{}'", s.replace('\'', "''")))
        .collect::<Vec<_>>()
        .join(", ");
    let mut out = HashMap::new();
    let mut s = crate::engine::scan::stream(
        after,
        Some(&[ID, space.column.as_str()]),
        Some(&format!("{ID} IN ({list})")),
    )
    .await?;
    while let Some(b) = s.try_next().await? {
        let (got, v) = (
            b.column(0).as_string::<i32>(),
            b.column(1).as_fixed_size_list(),
        );
        for i in 0..b.num_rows() {
            if let Some(x) = usable(v, i) {
                out.insert(got.value(i).to_owned(), x);
            }
        }
    }
    Ok(out)
}

/// The mean share of each sampled record's `k` nearest neighbours before that are
/// still among its neighbours after (among the sampled records that survive with a
/// vector; a record that did not survive keeps none).
fn neighbours_kept(
    ids: &[String],
    old: &[f32],
    before: &Space,
    after_vec: &HashMap<String, Vec<f32>>,
    after: &Space,
    k: usize,
) -> Result<f64> {
    let n = ids.len();
    let om = memlane_core::compat::Matrix::new(old, before.dimension)?;
    let nn_old = memlane_core::compat::knn(&om, k, before.metric)?;
    let alive: Vec<usize> = (0..n)
        .filter(|i| after_vec.contains_key(&ids[*i]))
        .collect();
    let mut kept = vec![0f64; n];
    if alive.len() > k + 1 {
        let mut flat = Vec::with_capacity(alive.len() * after.dimension);
        for i in &alive {
            flat.extend_from_slice(&after_vec[&ids[*i]]);
        }
        let am = memlane_core::compat::Matrix::new(&flat, after.dimension)?;
        let nn_new = memlane_core::compat::knn(&am, k, after.metric)?;
        for (pos, i) in alive.iter().enumerate() {
            let new_set: HashSet<usize> =
                nn_new.row(pos).iter().map(|j| alive[*j as usize]).collect();
            let hit = nn_old
                .row(*i)
                .iter()
                .filter(|j| new_set.contains(&(**j as usize)))
                .count();
            #[allow(clippy::cast_precision_loss)]
            {
                kept[*i] = hit as f64 / k as f64;
            }
        }
    }
    #[allow(clippy::cast_precision_loss)]
    Ok(kept.iter().sum::<f64>() / n as f64)
}

/// Rows sampled per version for the drift test.
pub(crate) const DRIFT_SAMPLE: usize = 500;

/// Up to `n` finite vectors of `space` spread evenly over `ds` (nulls skipped).
pub(crate) async fn spread_vectors(ds: &Dataset, space: &Space, n: usize) -> Result<Vec<f32>> {
    let d = space.dimension;
    let mut out = Vec::with_capacity(n * d);
    for b in crate::engine::scan::spread(ds, &[space.column.as_str()], n).await? {
        let v = b.column(0).as_fixed_size_list();
        let vals = v.values().as_primitive::<Float32Type>().values();
        for i in 0..b.num_rows() {
            if v.is_valid(i) {
                #[allow(clippy::cast_sign_loss)]
                let off = v.value_offset(i) as usize;
                let x = &vals[off..off + d];
                if x.iter().all(|f| f.is_finite()) {
                    out.extend_from_slice(x);
                }
            }
        }
    }
    Ok(out)
}

/// Drift of every space present (with data) in both versions.
pub(crate) async fn drifts(
    base: &Dataset,
    base_state: &StoreState,
    ds: &Dataset,
    state: &StoreState,
) -> Result<Vec<SpaceDrift>> {
    let mut out = Vec::new();
    for sp in &state.spaces {
        let Some(old) = base_state.space(&sp.name) else {
            continue;
        };
        if old.dimension != sp.dimension || !has(base, &old.column) || !has(ds, &sp.column) {
            continue;
        }
        let a = spread_vectors(base, old, DRIFT_SAMPLE).await?;
        let b = spread_vectors(ds, sp, DRIFT_SAMPLE).await?;
        let (Ok(ma), Ok(mb)) = (
            memlane_core::compat::Matrix::new(&a, sp.dimension),
            memlane_core::compat::Matrix::new(&b, sp.dimension),
        ) else {
            continue;
        };
        if let Some(d) = memlane_core::drift::drift(&ma, &mb, 199, 0x6d6d64) {
            let mut o = old.clone();
            let mut n = sp.clone();
            o.fingerprint = None;
            n.fingerprint = None;
            out.push(SpaceDrift {
                space: sp.name.clone(),
                identity_changed: o != n,
                drift: d,
            });
        }
    }
    Ok(out)
}
