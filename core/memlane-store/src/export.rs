//! Export by extension: the store's user columns as JSON Lines (`.jsonl`, `.json`) or
//! Arrow IPC (anything else).

use std::io::{BufWriter, Write};
use std::path::Path;
use std::sync::Arc;

use arrow::datatypes::Schema;
use futures::TryStreamExt;
use lance::io::RecordBatchStream;

use crate::error::Result;
use crate::readers::io_err;
use crate::store::Store;

/// Columns of an export: all but the derived digest columns of the spaces.
pub(crate) fn user_columns(store: &Store) -> Vec<String> {
    let digests: Vec<String> = store
        .state()
        .spaces
        .iter()
        .map(memlane_core::Space::digest_column)
        .collect();
    store
        .schema()
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .filter(|n| !digests.contains(n))
        .collect()
}

/// Export the live records as an Arrow IPC file (all columns); returns rows written.
pub async fn export_ipc(store: &Store, path: impl AsRef<Path>) -> Result<u64> {
    let path = path.as_ref();
    let cols = user_columns(store);
    let refs: Vec<&str> = cols.iter().map(String::as_str).collect();
    let mut batches = store.scan_stream(Some(&refs), None).await?;
    let schema: Arc<Schema> = batches.schema();
    let f = std::fs::File::create(path).map_err(|e| io_err(path, e))?;
    let mut w = arrow::ipc::writer::FileWriter::try_new(BufWriter::new(f), &schema)?;
    let mut n = 0;
    while let Some(b) = batches.try_next().await? {
        w.write(&b)?;
        n += b.num_rows() as u64;
    }
    w.finish()?;
    Ok(n)
}

/// Export the live records as JSON Lines; returns rows written.
pub async fn export_jsonl(store: &Store, path: impl AsRef<Path>) -> Result<u64> {
    let path = path.as_ref();
    let cols = user_columns(store);
    let refs: Vec<&str> = cols.iter().map(String::as_str).collect();
    let mut batches = store.scan_stream(Some(&refs), None).await?;
    let f = std::fs::File::create(path).map_err(|e| io_err(path, e))?;
    let mut w = arrow::json::LineDelimitedWriter::new(BufWriter::new(f));
    let mut n = 0;
    while let Some(b) = batches.try_next().await? {
        w.write(&b)?;
        n += b.num_rows() as u64;
    }
    w.finish()?;
    let mut inner = w.into_inner();
    inner.flush().map_err(|e| io_err(path, e))?;
    Ok(n)
}

/// Export every record to `path` in the format its extension names: JSON Lines for
/// `.jsonl` / `.json`, Arrow IPC otherwise. Returns the rows written.
pub async fn export(store: &Store, path: impl AsRef<Path>) -> Result<u64> {
    let path = path.as_ref();
    let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("");
    if ext.eq_ignore_ascii_case("jsonl") || ext.eq_ignore_ascii_case("json") {
        export_jsonl(store, path).await
    } else {
        export_ipc(store, path).await
    }
}
