//! Data files of a transaction and their digests, read through Lance's object store (so
//! the same code serves local paths and object-store URIs).

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use lance::Dataset;
use lance::dataset::transaction::Operation;
use lance::io::ObjectStore;
use lance::table::format::Fragment;
use memlane_core::FileDigest;
use object_store::path::Path;

use crate::error::{Result, StoreError};

/// Bytes read per request while hashing.
const CHUNK: usize = 8 << 20;

/// Every (fragment id, data file path) an operation references.
pub(crate) fn op_files(op: &Operation) -> Vec<(u64, String)> {
    fn of(frags: &[Fragment]) -> impl Iterator<Item = (u64, String)> + '_ {
        frags
            .iter()
            .flat_map(|f| f.files.iter().map(move |d| (f.id, d.path.clone())))
    }
    match op {
        Operation::Append { fragments }
        | Operation::Overwrite { fragments, .. }
        | Operation::Merge { fragments, .. } => of(fragments).collect(),
        Operation::Update {
            updated_fragments,
            new_fragments,
            ..
        } => of(updated_fragments).chain(of(new_fragments)).collect(),
        Operation::Delete {
            updated_fragments, ..
        } => of(updated_fragments).collect(),
        Operation::Rewrite { groups, .. } => groups
            .iter()
            .flat_map(|g| of(&g.new_fragments).collect::<Vec<_>>())
            .collect(),
        Operation::DataReplacement { replacements } => replacements
            .iter()
            .map(|g| (g.0, g.1.path.clone()))
            .collect(),
        _ => vec![],
    }
}

/// The data files of a version: (fragment id, path under `data/`, physical rows).
pub(crate) fn version_files(ds: &Dataset) -> Vec<(u64, String, u64)> {
    ds.fragments()
        .iter()
        .flat_map(|f| {
            let rows = f.physical_rows.unwrap_or(0) as u64;
            f.files.iter().map(move |d| (f.id, d.path.clone(), rows))
        })
        .collect()
}

/// The data files of the version that live under another dataset's root (a branch's
/// files read from the store it was branched from: a base path in the manifest).
pub(crate) fn inherited_files(ds: &Dataset) -> HashSet<String> {
    ds.fragments()
        .iter()
        .flat_map(|f| f.files.iter())
        .filter(|d| d.base_id.is_some())
        .map(|d| d.path.clone())
        .collect()
}

/// The files `op` adds on top of `base` (none for a new dataset's base).
pub(crate) fn new_files(base: Option<&Dataset>, op: &Operation) -> Vec<(u64, String)> {
    let known: HashSet<String> = base
        .map(|b| version_files(b).into_iter().map(|(_, p, _)| p).collect())
        .unwrap_or_default();
    let mut seen = HashSet::new();
    op_files(op)
        .into_iter()
        .filter(|(_, p)| !known.contains(p) && seen.insert(p.clone()))
        .collect()
}

/// blake3 and length of one object.
pub(crate) async fn hash_object(store: &ObjectStore, path: &Path) -> Result<(String, u64)> {
    let size = store.size(path).await? as usize;
    let mut h = blake3::Hasher::new();
    let mut at = 0usize;
    while at < size {
        let end = (at + CHUNK).min(size);
        let bytes = store.read_one_range(path, at..end).await?;
        h.update(&bytes);
        at = end;
    }
    Ok((h.finalize().to_hex().to_string(), size as u64))
}

/// Digests of `files` (under `data_dir`), a few at a time.
pub(crate) async fn digests(
    store: &Arc<ObjectStore>,
    data_dir: &Path,
    files: &[(u64, String)],
) -> Result<BTreeMap<String, FileDigest>> {
    let mut out = BTreeMap::new();
    for chunk in files.chunks(4) {
        // owned futures: the caller's future stays `Send` for any lifetime
        let futs: Vec<_> = chunk
            .iter()
            .map(|(frag, p)| {
                let (store, path) = (store.clone(), data_dir.clone().join(p.as_str()));
                let (fragment, p) = (*frag, p.clone());
                async move {
                    let (blake3, bytes) =
                        hash_object(&store, &path)
                            .await
                            .map_err(|e| StoreError::Storage {
                                path: format!("data/{p}"),
                                message: format!("cannot read the data file: {e}"),
                            })?;
                    Ok::<_, StoreError>((
                        p,
                        FileDigest {
                            blake3,
                            bytes,
                            fragment,
                        },
                    ))
                }
            })
            .collect();
        out.extend(futures::future::try_join_all(futs).await?);
    }
    Ok(out)
}

/// Digests of the files `op` adds to `ds` (the dataset the transaction is built on).
pub(crate) async fn added_digests(
    ds: &Dataset,
    op: &Operation,
) -> Result<BTreeMap<String, FileDigest>> {
    let files = new_files(Some(ds), op);
    if files.is_empty() {
        return Ok(BTreeMap::new());
    }
    let store = ds.object_store(None).await?;
    digests(&store, &ds.data_dir(), &files).await
}
