//! `index_recall@10`: how many of the exact 10 nearest neighbours a space's vector index
//! finds, over queries spread across the space's own vectors.

use arrow::array::{Array, AsArray};
use arrow::datatypes::Float32Type;
use futures::TryStreamExt;
use lance::Dataset;
use memlane_core::compat::{Matrix, knn_queries};
use memlane_core::index::RECALL_K;
use memlane_core::schema::ID;
use memlane_core::{InvariantResult, InvariantSpec, Metric, Space};

use crate::engine::scan::{Probe, nearest, spread};
use crate::error::{Result, StoreError};

/// Queries an index recall check runs.
pub(crate) const RECALL_QUERIES: usize = 100;

/// The recall check of `sp`'s index on `ds`: neighbour slots are the rows looked at,
/// slots the index missed the failures, so `mostly` is the minimum recall.
pub(crate) async fn recall(
    spec: &InvariantSpec,
    ds: &Dataset,
    sp: &Space,
) -> Result<InvariantResult> {
    let label = spec.label();
    let Some(index) = sp.index.as_ref() else {
        return Ok(super::skipped(
            spec,
            format!("space `{}` has no vector index", sp.name),
        ));
    };
    let batches = spread(ds, &[sp.column.as_str()], RECALL_QUERIES * 2).await?;
    let mut queries: Vec<Vec<f32>> = Vec::new();
    for b in &batches {
        let v = b.column(0).as_fixed_size_list();
        for i in 0..b.num_rows() {
            if v.is_valid(i) && queries.len() < RECALL_QUERIES {
                queries.push(v.value(i).as_primitive::<Float32Type>().values().to_vec());
            }
        }
    }
    let (mut slots, mut missed) = (0u64, 0u64);
    let (mut used, mut fallback) = (None, None);
    // the exact neighbours of every query in one scan of the column (a flat search per
    // query read the whole column a hundred times: most of a 1M-row index step)
    let exact = exact_neighbours(ds, sp, &queries, RECALL_K).await?;
    for (q, exact) in queries.iter().zip(&exact) {
        let approx = nearest(ds, sp, q, RECALL_K, None, Probe::default(), None).await?;
        used = used.or(approx.index);
        fallback = fallback.or(approx.fallback);
        let found: std::collections::HashSet<&str> =
            approx.hits.iter().map(|h| h.0.as_str()).collect();
        slots += exact.len() as u64;
        missed += exact
            .iter()
            .filter(|id| !found.contains(id.as_str()))
            .count() as u64;
    }
    #[allow(clippy::cast_precision_loss)]
    let recall = if slots == 0 {
        1.0
    } else {
        (slots - missed) as f64 / slots as f64
    };
    let message = match (used, fallback) {
        (None, Some(why)) => why,
        (None, None) => format!(
            "space `{}` records a {} index but Lance has none on `{}`: searches are exact; rebuild it with `create_index`",
            sp.name, index.kind, sp.column
        ),
        (Some(kind), _) => format!(
            "{label} = {recall:.3} over {} queries ({kind}, nprobes {}{}); at least {:.2} required",
            queries.len(),
            index.nprobes(),
            index
                .refine_factor()
                .map(|r| format!(", refine {r}"))
                .unwrap_or_default(),
            spec.mostly
        ),
    };
    // an index Lance lost fails the check whatever the recall of the exact fallback
    let missed = if used.is_none() { slots.max(1) } else { missed };
    Ok(InvariantResult::from_counts(
        label,
        spec.check,
        spec.severity,
        spec.mostly,
        slots,
        missed,
        vec![],
        message,
    ))
}

/// Rows read per batch by [`exact_neighbours`].
const EXACT_BATCH: usize = 65_536;

/// The ids of the exact `k` nearest rows of `ds` in `sp` for each query, nearest first,
/// from one scan of the vector column: each batch's best `k` per query by memlane's
/// blocked products, merged by exact distance (ties to the smaller id).
async fn exact_neighbours(
    ds: &Dataset,
    sp: &Space,
    queries: &[Vec<f32>],
    k: usize,
) -> Result<Vec<Vec<String>>> {
    let d = sp.dimension;
    let internal = |e: memlane_core::compat::CompatError| {
        StoreError::Internal(format!("exact neighbours of the index recall check: {e}"))
    };
    let flat_q: Vec<f32> = queries.concat();
    let mut best: Vec<Vec<(f64, String)>> = vec![Vec::new(); queries.len()];
    if queries.is_empty() {
        return Ok(Vec::new());
    }
    let qm = Matrix::new(&flat_q, d).map_err(internal)?;
    let mut scan = ds.scan();
    scan.project(&[ID, sp.column.as_str()])?;
    scan.filter(&format!("{} IS NOT NULL", sp.column))?;
    scan.batch_size(EXACT_BATCH);
    let mut stream = scan.try_into_stream().await?;
    while let Some(b) = stream.try_next().await? {
        let ids = b.column(0).as_string::<i32>();
        let v = b.column(1).as_fixed_size_list();
        let vals = v.values().as_primitive::<Float32Type>().values();
        let mut flat = Vec::with_capacity(b.num_rows() * d);
        let mut rows: Vec<usize> = Vec::with_capacity(b.num_rows());
        for i in 0..b.num_rows() {
            #[allow(clippy::cast_sign_loss)]
            let off = v.value_offset(i) as usize;
            let x = &vals[off..off + d];
            if v.is_valid(i) && x.iter().all(|f| f.is_finite()) {
                flat.extend_from_slice(x);
                rows.push(i);
            }
        }
        if rows.is_empty() {
            continue;
        }
        let bm = Matrix::new(&flat, d).map_err(internal)?;
        let nb = knn_queries(&qm, &bm, k.min(rows.len()), sp.metric).map_err(internal)?;
        for (qi, found) in nb.iter_rows().enumerate() {
            let q = &queries[qi];
            for &j in found {
                let j = j as usize;
                let dist = distance(sp.metric, q, &flat[j * d..(j + 1) * d]);
                best[qi].push((dist, ids.value(rows[j]).to_owned()));
            }
            best[qi].sort_by(|a, b| a.0.total_cmp(&b.0).then_with(|| a.1.cmp(&b.1)));
            best[qi].truncate(k);
        }
    }
    Ok(best
        .into_iter()
        .map(|v| v.into_iter().map(|(_, id)| id).collect())
        .collect())
}

/// The distance Lance ranks by: cosine distance, negative inner product, squared L2.
fn distance(metric: Metric, a: &[f32], b: &[f32]) -> f64 {
    let (mut ab, mut aa, mut bb, mut l2) = (0f64, 0f64, 0f64, 0f64);
    for (x, y) in a.iter().zip(b) {
        let (x, y) = (f64::from(*x), f64::from(*y));
        ab += x * y;
        aa += x * x;
        bb += y * y;
        l2 += (x - y) * (x - y);
    }
    match metric {
        Metric::Cosine if aa > 0.0 && bb > 0.0 => 1.0 - ab / (aa.sqrt() * bb.sqrt()),
        Metric::Cosine => 1.0,
        Metric::Dot => -ab,
        Metric::L2 => l2,
    }
}

/// Whether `sp`'s index covers its rows (a warning): rows appended after it was built
/// are searched by a flat scan until an `optimize_index` step folds them in; an index
/// Lance no longer has (dropped or lost) is reported too.
pub(crate) async fn coverage(ds: &Dataset, sp: &Space) -> Result<InvariantResult> {
    let mut spec = InvariantSpec::index_recall(&sp.name, 1.0);
    spec.severity = memlane_core::Severity::Warn;
    let name = format!("index_coverage[{}]", sp.name);
    let index_name = format!("{}_idx", sp.column);
    let total = ds
        .count_rows(Some(format!("{} IS NOT NULL", sp.column)))
        .await? as u64;
    if !crate::engine::scan::has_index(ds, &index_name).await? {
        return Ok(InvariantResult::from_counts(
            name,
            spec.check,
            spec.severity,
            1.0,
            total,
            total,
            vec![],
            format!(
                "space `{}` records a vector index but Lance has none on `{}`: searches are exact; rebuild it with a `create_index` step",
                sp.name, sp.column
            ),
        ));
    }
    let stats: serde_json::Value = serde_json::from_str(
        &lance::index::DatasetIndexExt::index_statistics(ds, &index_name).await?,
    )
    .unwrap_or_default();
    let unindexed = stats["num_unindexed_rows"].as_u64().unwrap_or(0);
    let message = if unindexed == 0 {
        format!(
            "the {} index of `{}` covers all {total} vectors",
            index_kind(sp),
            sp.name
        )
    } else {
        format!(
            "{unindexed} of {total} vectors of `{}` were added after its index was built and are searched flat; fold them in with an `optimize_index` step",
            sp.name
        )
    };
    Ok(InvariantResult::from_counts(
        name,
        spec.check,
        spec.severity,
        1.0,
        total,
        unindexed.min(total),
        vec![],
        message,
    ))
}

fn index_kind(sp: &Space) -> String {
    sp.index
        .as_ref()
        .map_or_else(|| "vector".into(), |i| i.kind.to_string())
}

/// Whether every recorded index of `spaces` is there and readable (for `verify`): an
/// indexed query of one stored vector per space must be answered by the index, not by
/// the exact fallback a missing or damaged index file forces.
pub(crate) async fn readable(
    ds: &Dataset,
    spaces: &[Space],
) -> Result<std::result::Result<String, String>> {
    let (mut ok, mut bad) = (Vec::new(), Vec::new());
    for sp in spaces {
        let Some(index) = &sp.index else { continue };
        if !crate::engine::scan::has(ds, &sp.column) {
            continue;
        }
        let Some(q) = first_vector(ds, sp).await? else {
            continue;
        };
        let found = nearest(ds, sp, &q, 1, None, Probe::default(), None).await?;
        match (found.index, found.fallback) {
            (Some(_), _) => ok.push(format!("{} ({})", sp.name, index.kind)),
            (None, Some(why)) => bad.push(why),
            (None, None) => bad.push(format!(
                "space `{}` records a {} index but Lance has none on `{}`; rebuild it with an `optimize_index` step",
                sp.name, index.kind, sp.column
            )),
        }
    }
    if !bad.is_empty() {
        return Ok(Err(bad.join("; ")));
    }
    Ok(Ok(if ok.is_empty() {
        "no space records a vector index".into()
    } else {
        format!("indexes readable: {}", ok.join(", "))
    }))
}

/// One stored vector of `sp` (the first valid one of a small spread sample).
async fn first_vector(ds: &Dataset, sp: &Space) -> Result<Option<Vec<f32>>> {
    for b in spread(ds, &[sp.column.as_str()], 8).await? {
        let v = b.column(0).as_fixed_size_list();
        if let Some(i) = (0..b.num_rows()).find(|&i| v.is_valid(i)) {
            return Ok(Some(
                v.value(i).as_primitive::<Float32Type>().values().to_vec(),
            ));
        }
    }
    Ok(None)
}
