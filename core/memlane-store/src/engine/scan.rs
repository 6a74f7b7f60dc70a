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
