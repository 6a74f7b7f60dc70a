//! The store's side files under `_memlane/`, named in one place.
//!
//! Everything memlane keeps beside the Lance dataset lives under [`DIR`]; nothing in it
//! is needed to read the data (the state and history are in the commits), so losing it
//! costs work (a backfill's unsaved vectors, a cached adapter) or a warning, never data.

use std::path::PathBuf;

/// The side directory inside a store.
pub(crate) const DIR: &str = "_memlane";
/// The newest memlane commit as last noted (see `engine::record::note_head`).
pub(crate) const HEAD: &str = "_memlane/head.json";
/// The migration lock.
pub(crate) const LOCK: &str = "lock.json";
/// Vectors a backfill embedded but has not committed yet.
pub(crate) const BACKFILL: &str = "backfill";
/// Fitted query adapters (content-addressed).
pub(crate) const ADAPTERS: &str = "adapters";
/// Kept validation reports.
pub(crate) const VALIDATE: &str = "validate";

/// The local path of a store URI (`file://` or a plain path); `None` for object stores.
pub(crate) fn local_root(uri: &str) -> Option<PathBuf> {
    let p = uri.strip_prefix("file://").unwrap_or(uri);
    (!p.contains("://")).then(|| PathBuf::from(p))
}

/// A side path of a local store: `<store>/_memlane/<name>`.
pub(crate) fn path(uri: &str, name: &str) -> PathBuf {
    let root = uri.strip_prefix("file://").unwrap_or(uri);
    PathBuf::from(root).join(DIR).join(name)
}
