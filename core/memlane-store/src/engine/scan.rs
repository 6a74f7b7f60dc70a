//! Reading a Lance version: streaming scans with a projection and a SQL filter, and
//! deterministic samples spread over the rows.

use std::sync::Arc;

use arrow::array::RecordBatch;
use futures::TryStreamExt;
use lance::Dataset;
use lance::dataset::scanner::DatasetRecordBatchStream;

use crate::error::Result;

/// A streaming scan of `cols` (all when `None`) of the live rows, optionally filtered
/// by SQL: batches one at a time, so memory stays flat as the store grows.
pub(crate) async fn stream(
    ds: &Dataset,
    cols: Option<&[&str]>,
    filter: Option<&str>,
) -> Result<DatasetRecordBatchStream> {
    let mut s = ds.scan();
    if let Some(c) = cols {
        s.project(c)?;
    }
    if let Some(f) = filter {
        s.filter(f)?;
    }
    Ok(s.try_into_stream().await?)
}

/// Like [`stream`], collected, with an optional row limit.
pub(crate) async fn collect(
    ds: &Dataset,
    cols: &[&str],
    filter: Option<&str>,
    limit: Option<usize>,
) -> Result<Vec<RecordBatch>> {
    let mut s = ds.scan();
    s.project(cols)?;
    if let Some(f) = filter {
        s.filter(f)?;
    }
    if let Some(l) = limit {
        s.limit(Some(i64::try_from(l).unwrap_or(i64::MAX)), None)?;
    }
    Ok(s.try_into_stream().await?.try_collect().await?)
}

/// Up to `n` rows spread evenly over a version (deterministic), with the columns `cols`
/// (vectors null where missing).
pub(crate) async fn spread(ds: &Dataset, cols: &[&str], n: usize) -> Result<Vec<RecordBatch>> {
    let total = ds.count_rows(None).await?;
    if total == 0 || n == 0 {
        return Ok(vec![]);
    }
    let want = n.min(total);
    let idx: Vec<u64> = (0..want).map(|i| (i * total / want) as u64).collect();
    let schema = ds.schema().project(cols)?;
    let mut out = Vec::new();
    for chunk in idx.chunks(4096) {
        out.push(ds.take(chunk, Arc::new(schema.clone())).await?);
    }
    Ok(out)
}

/// Whether `ds` has the column `col`.
pub(crate) fn has(ds: &Dataset, col: &str) -> bool {
    ds.schema().field(col).is_some()
}

/// Lance's distance for a space's metric.
pub(crate) fn distance(m: memlane_core::Metric) -> lance_linalg::distance::DistanceType {
    use lance_linalg::distance::DistanceType;
    match m {
        memlane_core::Metric::Cosine => DistanceType::Cosine,
        memlane_core::Metric::Dot => DistanceType::Dot,
        memlane_core::Metric::L2 => DistanceType::L2,
    }
}

/// One neighbour: (id, content, distance).
pub(crate) type Neighbour = (String, Option<String>, f32);

/// How a k-NN query ran: over the space's vector index (its kind) or exactly.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Nearest {
    /// Neighbours, closest first.
    pub(crate) hits: Vec<Neighbour>,
    /// The index kind used, `None` for an exact (flat) scan.
    pub(crate) index: Option<memlane_core::IndexKind>,
    /// Why the space's index was not used although it should have been (its files are
    /// missing or unreadable): the search fell back to an exact scan.
    pub(crate) fallback: Option<String>,
    /// The hits' rows (`id`, the asked columns, `_distance`), closest first, when the
    /// query asked for columns: read by the same scan as the hits.
    pub(crate) table: Option<RecordBatch>,
}

/// Whether Lance has an index named `name` on this version.
pub(crate) async fn has_index(ds: &Dataset, name: &str) -> Result<bool> {
    use lance::index::DatasetIndexExt;
    Ok(ds.load_indices().await?.iter().any(|i| i.name == name))
}

/// A vector index on the space's column that memlane did not build (no spec in the
/// state), as a spec with the default query settings: only when its metric is the
/// space's (an index of another metric would rank differently) and its kind is one
/// memlane knows.
async fn foreign_index(
    ds: &Dataset,
    space: &memlane_core::Space,
) -> Option<memlane_core::IndexSpec> {
    use lance::index::DatasetIndexExt;
    use memlane_core::IndexKind;
    let field = ds.schema().field(&space.column)?.id;
    let field = u32::try_from(field).ok()?;
    let described = ds.describe_indices(None).await.ok()?;
    let d = described.iter().find(|d| d.field_ids() == [field])?;
    let kind = match d.index_type().to_ascii_uppercase().as_str() {
        "IVF_PQ" => IndexKind::IvfPq,
        "IVF_HNSW_SQ" => IndexKind::IvfHnswSq,
        "IVF_FLAT" => IndexKind::IvfFlat,
        _ => return None,
    };
    let details: serde_json::Value = serde_json::from_str(&d.details().ok()?).ok()?;
    let metric = details.get("metric_type")?.as_str()?.to_ascii_lowercase();
    (metric == space.metric.as_str()).then(|| memlane_core::IndexSpec::new(kind))
}

/// How a k-NN query may use the space's index.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Probe {
    /// Scan every vector.
    pub(crate) exact: bool,
    /// IVF partitions probed (default: the spec's).
    pub(crate) nprobes: Option<usize>,
    /// Refine factor (default: the spec's).
    pub(crate) refine: Option<u32>,
}

/// The `k` nearest rows of `space` to `query` (rows with a vector, and matching
/// `filter`): over the space's index when it has one Lance can use and the probe is not
/// exact, with the spec's nprobes / refine factor / ef unless the probe overrides them.
///
/// An index whose files are missing or damaged (deleted by hand, a truncated object)
/// does not fail the query: it is answered by an exact scan and `fallback` says why and
/// how to rebuild the index.
pub(crate) async fn nearest(
    ds: &Dataset,
    space: &memlane_core::Space,
    query: &[f32],
    k: usize,
    filter: Option<&str>,
    probe: Probe,
    columns: Option<&[String]>,
) -> Result<Nearest> {
    let index_name = format!("{}_idx", space.column);
    let foreign;
    let spec = match &space.index {
        Some(s) if !probe.exact && has_index(ds, &index_name).await? => Some(s),
        // an index another tool built on the column (lancedb's `create_index`) serves
        // too, when it ranks by the space's metric
        None if !probe.exact => {
            foreign = foreign_index(ds, space).await;
            foreign.as_ref()
        }
        _ => None,
    };
    let query = Query {
        space,
        vector: query,
        k,
        filter,
        columns,
    };
    let Some(spec) = spec else {
        let (hits, table) = query.run(ds, None).await?;
        return Ok(Nearest {
            hits,
            index: None,
            fallback: None,
            table,
        });
    };
    match query.run(ds, Some((spec, probe))).await {
        Ok((hits, table)) => Ok(Nearest {
            hits,
            index: Some(spec.kind),
            fallback: None,
            table,
        }),
        Err(e) => {
            let (hits, table) = query.run(ds, None).await?;
            Ok(Nearest {
                hits,
                table,
                index: None,
                fallback: Some(format!(
                    "the {} index `{index_name}` of space `{}` cannot be read ({e}); searched exactly instead: rebuild it with an `optimize_index` step",
                    spec.kind, space.name
                )),
            })
        }
    }
}

/// One k-NN query, run over an index or exactly.
struct Query<'a> {
    space: &'a memlane_core::Space,
    vector: &'a [f32],
    k: usize,
    filter: Option<&'a str>,
    /// Columns to return with the hits (as [`Nearest::table`]).
    columns: Option<&'a [String]>,
}

impl Query<'_> {
    /// The hits, closest first: through `index` (its spec and the probe's overrides)
    /// or, without one, by a flat scan; with their rows when columns were asked for.
    async fn run(
        &self,
        ds: &Dataset,
        index: Option<(&memlane_core::IndexSpec, Probe)>,
    ) -> Result<(Vec<Neighbour>, Option<RecordBatch>)> {
        use arrow::array::Float32Array;
        use memlane_core::schema::{CONTENT, ID};

        let space = self.space;
        let q = Float32Array::from(self.vector.to_vec());
        let mut s = ds.scan();
        s.nearest(&space.column, &q, self.k)?;
        s.distance_metric(distance(space.metric));
        match index {
            Some((spec, probe)) => {
                s.use_index(true);
                s.nprobes(probe.nprobes.unwrap_or(spec.nprobes()));
                if let Some(r) = probe.refine.or(spec.refine_factor()) {
                    s.refine(r);
                }
                if spec.kind == memlane_core::IndexKind::IvfHnswSq {
                    s.ef(spec.ef_for(self.k));
                }
            }
            None => {
                s.use_index(false);
            }
        }
        let mut cols: Vec<&str> = vec![ID];
        if ds.schema().field(CONTENT).is_some() {
            cols.push(CONTENT);
        }
        for c in self.columns.unwrap_or_default() {
            if !cols.contains(&c.as_str()) {
                cols.push(c);
            }
        }
        cols.push("_distance");
        s.project(&cols)?;
        s.disable_scoring_autoprojection();
        // A flat scan must skip rows without a vector; an index holds none, so there a
        // `IS NOT NULL` prefilter would only cost a read of the whole vector column per
        // query (20x lancedb's latency on 100k rows): rows with no distance are dropped
        // from the results instead (`hits_of`).
        let not_null = format!("{} IS NOT NULL", space.column);
        let f = match (self.filter, index.is_some()) {
            (Some(f), false) => Some(format!("({f}) AND {not_null}")),
            (Some(f), true) => Some(f.to_owned()),
            (None, false) => Some(not_null),
            (None, true) => None,
        };
        if let Some(f) = f {
            s.filter(&f)?;
            s.prefilter(true);
        }
        let schema = s.schema().await?;
        let batches: Vec<RecordBatch> = s.try_into_stream().await?.try_collect().await?;
        let rows = closest(schema, &batches, self.k)?;
        let mut hits = Vec::new();
        hits_of(&rows, &mut hits);
        let table = self
            .columns
            .map(|asked| rows_of(&rows, asked))
            .transpose()?;
        Ok((hits, table))
    }
}

/// The `k` rows of `batches` with the smallest finite `_distance`, closest first.
fn closest(
    schema: arrow::datatypes::SchemaRef,
    batches: &[RecordBatch],
    k: usize,
) -> Result<RecordBatch> {
    use arrow::array::{Array, AsArray, UInt32Array};

    let schema = batches.first().map_or(schema, RecordBatch::schema);
    let all = arrow::compute::concat_batches(&schema, batches)?;
    let Some(dist) = all.column_by_name("_distance") else {
        return Ok(all.slice(0, 0));
    };
    let dist = dist.as_primitive::<arrow::datatypes::Float32Type>();
    let mut order: Vec<u32> = (0..all.num_rows() as u32)
        .filter(|&i| !dist.is_null(i as usize) && dist.value(i as usize).is_finite())
        .collect();
    order.sort_by(|&a, &b| dist.value(a as usize).total_cmp(&dist.value(b as usize)));
    order.truncate(k);
    Ok(arrow::compute::take_record_batch(
        &all,
        &UInt32Array::from(order),
    )?)
}

/// The hits' rows as a caller asked for them: `id`, the asked columns in their order,
/// `_distance` (clamped at 0, as the hits' distances).
fn rows_of(rows: &RecordBatch, asked: &[String]) -> Result<RecordBatch> {
    use arrow::array::{Array, AsArray, Float32Array};
    use memlane_core::schema::ID;

    let mut names: Vec<&str> = vec![ID];
    names.extend(asked.iter().map(String::as_str).filter(|c| *c != ID));
    let mut fields = Vec::with_capacity(names.len() + 1);
    let mut cols = Vec::with_capacity(names.len() + 1);
    for n in names {
        let i = rows.schema().index_of(n)?;
        fields.push(rows.schema().field(i).clone());
        cols.push(rows.column(i).clone());
    }
    let dist: Float32Array = match rows.column_by_name("_distance") {
        Some(d) => d
            .as_primitive::<arrow::datatypes::Float32Type>()
            .iter()
            .map(|v| v.map(|x| x.max(0.0)))
            .collect(),
        None => Float32Array::from(Vec::<f32>::new()),
    };
    fields.push(arrow::datatypes::Field::new(
        "_distance",
        arrow::datatypes::DataType::Float32,
        dist.null_count() > 0,
    ));
    cols.push(std::sync::Arc::new(dist));
    Ok(RecordBatch::try_new(
        std::sync::Arc::new(arrow::datatypes::Schema::new(fields)),
        cols,
    )?)
}

/// The `(id, content, distance)` rows of one result batch, appended to `out`.
fn hits_of(b: &RecordBatch, out: &mut Vec<Neighbour>) {
    use arrow::array::{Array, AsArray};
    use memlane_core::schema::{CONTENT, ID};

    let ids = b.column_by_name(ID).map(|c| c.as_string::<i32>().clone());
    let content = b
        .column_by_name(CONTENT)
        .map(|c| c.as_string::<i32>().clone());
    let dist = b
        .column_by_name("_distance")
        .map(|c| c.as_primitive::<arrow::datatypes::Float32Type>().clone());
    let (Some(ids), Some(dist)) = (ids, dist) else {
        return;
    };
    for i in (0..b.num_rows()).filter(|&i| !dist.is_null(i) && dist.value(i).is_finite()) {
        out.push((
            ids.value(i).to_owned(),
            content
                .as_ref()
                .and_then(|c| (!c.is_null(i)).then(|| c.value(i).to_owned())),
            // float noise can push a self-match slightly below zero
            dist.value(i).max(0.0),
        ));
    }
}

/// A `Delete` of the rows at `addresses` (`_rowaddr`: fragment id in the high 32 bits,
/// offset in the low), as deletion files beside the dataset; fragments left empty are
/// dropped whole.
pub(crate) async fn delete_rows(
    ds: &Dataset,
    addresses: Vec<u64>,
    predicate: String,
) -> Result<lance::dataset::transaction::Operation> {
    let mut by_frag: std::collections::HashMap<u64, Vec<u32>> = std::collections::HashMap::new();
    for a in addresses {
        #[allow(clippy::cast_possible_truncation)]
        by_frag
            .entry(a >> 32)
            .or_default()
            .push((a & 0xffff_ffff) as u32);
    }
    let mut updated = Vec::new();
    let mut deleted_ids = Vec::new();
    for frag in ds.get_fragments() {
        let id = frag.id() as u64;
        if let Some(offsets) = by_frag.remove(&id) {
            match frag.extend_deletions(offsets).await? {
                Some(f) => updated.push(f.metadata().clone()),
                None => deleted_ids.push(id),
            }
        }
    }
    Ok(lance::dataset::transaction::Operation::Delete {
        updated_fragments: updated,
        deleted_fragment_ids: deleted_ids,
        predicate,
    })
}
