//! Files in and out: migration folders, JSONL and Arrow IPC records.

use std::io::{BufRead, BufWriter, Write};
use std::path::Path;
use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::datatypes::Schema;
use futures::TryStreamExt;
use lance::io::RecordBatchStream;
use memlane_core::Migration;

use crate::error::{Result, StoreError};
use crate::store::Store;

fn io_err(path: &Path, e: std::io::Error) -> StoreError {
    StoreError::Io {
        path: path.display().to_string(),
        source: e,
    }
}

/// Read and parse a migrations folder (`NNNN_slug.toml` files; others ignored).
pub fn read_folder(dir: impl AsRef<Path>) -> Result<Vec<Migration>> {
    let dir = dir.as_ref();
    let mut files = Vec::new();
    for e in std::fs::read_dir(dir).map_err(|e| io_err(dir, e))? {
        let e = e.map_err(|e| io_err(dir, e))?;
        let name = e.file_name().to_string_lossy().into_owned();
        if name.ends_with(".toml") && e.path().is_file() {
            let text = std::fs::read_to_string(e.path()).map_err(|err| io_err(&e.path(), err))?;
            files.push((name, text));
        }
    }
    Ok(memlane_core::parse_folder(&files)?)
}

/// The store-level invariants of a migrations folder (`invariants.toml`; none when the
/// file is absent).
pub fn read_invariants(dir: impl AsRef<Path>) -> Result<Vec<memlane_core::InvariantSpec>> {
    let path = dir.as_ref().join(memlane_core::migration::STORE_INVARIANTS);
    if !path.is_file() {
        return Ok(vec![]);
    }
    let text = std::fs::read_to_string(&path).map_err(|e| io_err(&path, e))?;
    Ok(memlane_core::migration::parse_invariants(
        memlane_core::migration::STORE_INVARIANTS,
        &text,
    )?)
}

/// Read JSON Lines (one object per line; blank lines skipped).
pub fn read_jsonl(path: impl AsRef<Path>) -> Result<Vec<serde_json::Value>> {
    let path = path.as_ref();
    let f = std::fs::File::open(path).map_err(|e| io_err(path, e))?;
    let mut out = Vec::new();
    for (i, line) in std::io::BufReader::new(f).lines().enumerate() {
        let line = line.map_err(|e| io_err(path, e))?;
        if line.trim().is_empty() {
            continue;
        }
        let v = serde_json::from_str(&line).map_err(|e| {
            StoreError::Input(format!(
                "{}:{}: not a JSON object: {e}",
                path.display(),
                i + 1
            ))
        })?;
        out.push(v);
    }
    Ok(out)
}

/// Read an Arrow IPC file into one batch.
pub fn read_ipc(path: impl AsRef<Path>) -> Result<RecordBatch> {
    let path = path.as_ref();
    let f = std::fs::File::open(path).map_err(|e| io_err(path, e))?;
    let reader = arrow::ipc::reader::FileReader::try_new(f, None)?;
    let schema = reader.schema();
    let batches = reader.collect::<std::result::Result<Vec<_>, _>>()?;
    Ok(arrow::compute::concat_batches(&schema, &batches)?)
}

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
