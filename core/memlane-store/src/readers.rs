//! Reading the user's files: migrations folders (migrations and store invariants),
//! records as JSON Lines or Arrow IPC.

use std::io::BufRead;
use std::path::Path;

use arrow::array::RecordBatch;
use memlane_core::Migration;

use crate::error::{Result, StoreError};

/// A file error naming the file.
pub(crate) fn io_err(path: &Path, e: std::io::Error) -> StoreError {
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

/// A migrations folder as memlane reads it: its migrations (`NNNN_slug.toml`) and its
/// store-level invariants (`invariants.toml`). Every command and binding that takes a
/// folder reads it through this, so what a folder means is decided once.
#[derive(Debug, Clone, Default)]
pub struct MigrationFolder {
    /// The migrations, in id order.
    pub migrations: Vec<Migration>,
    /// The store-level invariants, checked after every step of every migration.
    pub invariants: Vec<memlane_core::InvariantSpec>,
    /// The embedders its `memlane.toml` declares (checked when the folder is read, so
    /// plan and lint report a broken file before an apply needs it).
    pub embedders: std::collections::BTreeMap<String, crate::embed::EmbedderSpec>,
}

impl MigrationFolder {
    /// Read and parse the folder at `dir`.
    pub fn read(dir: impl AsRef<Path>) -> Result<MigrationFolder> {
        let dir = dir.as_ref();
        let config = dir.join(memlane_core::migration::CONFIG_FILE);
        Ok(MigrationFolder {
            migrations: read_folder(dir)?,
            invariants: read_invariants(dir)?,
            embedders: if config.is_file() {
                crate::embed::load_config(&config)?
            } else {
                Default::default()
            },
        })
    }
}
