//! Branches: zero-copy copies of a store at a version, for rehearsing a migration.
//!
//! A branch is a Lance shallow clone placed **beside** the store, at
//! `<store>.branches/<name>` on the same object store: its manifest points at the
//! store's data files, and everything written on the branch (appends, re-embedded
//! columns, deletions, indexes, `_memlane/` side files) goes under the branch's own
//! directory. Creating, writing and deleting a branch writes nothing inside the store's
//! directory (Lance's own branches live in `<store>/tree/` and `<store>/_refs/`, which
//! would change the store's files; a sibling clone does not).
//!
//! The clone carries no memlane record (Lance commits it as a bare `Clone`), so its
//! first commit is memlane's: the state of the store at the branch point, with an
//! `Action::Branch` entry naming where it came from, sealed as the first link of the
//! branch's own chain. The store's adapters are copied (they are small side files that
//! the state refers to). Caveat: cleaning up old versions of the store can delete data
//! files a branch still reads; branches are for rehearsals, not for keeping.

use std::sync::Arc;

use futures::StreamExt;
use lance::io::{ObjectStore, ObjectStoreRegistry};
use memlane_core::{Action, BranchOrigin, HistoryEntry};
use object_store::path::Path;
use serde::Serialize;

use super::{Store, now, open_dataset, read_state};
use crate::error::{Result, StoreError};
use crate::sidecar::{ADAPTERS, SideFiles, StorageOptions};

/// A branch of a store, as `branches` lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BranchInfo {
    /// Its name.
    pub name: String,
    /// Where it lives (`<store>.branches/<name>`).
    pub uri: String,
    /// The store's version it was branched at.
    pub from_version: u64,
    /// When (RFC 3339).
    pub created_at: String,
    /// Its own latest version.
    pub version: u64,
    /// Migrations applied on it (the store's, then its own).
    pub applied: usize,
    /// False for what a killed `branch create` left (no memlane record): delete it.
    pub complete: bool,
}

/// The directory holding a store's branches: `<store>.branches`.
pub fn branches_root(store_uri: &str) -> String {
    format!("{}.branches", store_uri.trim_end_matches('/'))
}

/// Where branch `name` of the store at `store_uri` lives.
pub fn branch_uri(store_uri: &str, name: &str) -> String {
    format!("{}/{name}", branches_root(store_uri))
}

/// Branch names are one path segment of letters, digits, `.`, `_` and `-`.
pub(crate) fn check_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && !name.starts_with('.')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if ok {
        Ok(())
    } else {
        Err(StoreError::Input(format!(
            "branch name `{name}`: use letters, digits, `.`, `_` and `-` (not starting with `.`), e.g. `rehearse-0004`"
        )))
    }
}

/// The object store and path of a URI (which need not exist yet).
pub(crate) async fn locate(
    uri: &str,
    storage: &StorageOptions,
) -> Result<(Arc<ObjectStore>, Path)> {
    let registry = Arc::new(ObjectStoreRegistry::default());
    Ok(ObjectStore::from_uri_and_params(registry, uri, &storage.params()).await?)
}

impl Store {
    /// Branch the store at `at` (default: its latest version) into
    /// `<store>.branches/<name>` and open the branch. Nothing inside the store's
    /// directory is written. Fails if the branch exists.
    pub async fn branch(&self, name: &str, at: Option<u64>) -> Result<Store> {
        check_name(name)?;
        self.ensure_intact()?;
        let target = branch_uri(&self.uri, name);
        if open_dataset(&target, &self.storage).await.is_ok() {
            return Err(StoreError::Exists { uri: target });
        }
        let mut src = match at {
            Some(v) => self.ds.checkout_version(v).await.map_err(|_| {
                StoreError::Input(format!(
                    "version {v} of {} does not exist (latest is {}); see `memlane history`",
                    self.uri,
                    self.ds.version_id()
                ))
            })?,
            None => (*self.ds).clone(),
        };
        let version = src.version_id();
        let state = read_state(&src).await?.ok_or_else(|| {
            StoreError::State(format!(
                "version {version} of {} carries no memlane state (it was written before memlane adopted the dataset); branch a later version",
                self.uri
            ))
        })?;
        src.shallow_clone(&target, version, Some(self.storage.params()))
            .await?;
        self.copy_adapters(&target).await?;
        let mut branch = Store::open_with(&target, self.storage.clone()).await?;
        let mut entry = HistoryEntry::new(Action::Branch, now());
        entry.reason = Some(format!("branch `{name}`"));
        entry.branched_from = Some(BranchOrigin {
            uri: self.uri.clone(),
            version,
        });
        entry.active_space.clone_from(&state.active_space);
        // the clone's first memlane commit: the state at the branch point
        branch.broken = None;
        branch.commit_state(state, entry).await?;
        Ok(branch)
    }

    /// Copy the store's adapter side files to the branch at `target`.
    pub(crate) async fn copy_adapters(&self, target: &str) -> Result<()> {
        let to = SideFiles::open(target, &self.storage).await?;
        for name in self.side.list(ADAPTERS).await? {
            if let Some(f) = self.side.get(&name).await? {
                to.put(&name, f.bytes).await?;
            }
        }
        Ok(())
    }

    /// The branches beside this store, by name.
    pub async fn branches(&self) -> Result<Vec<BranchInfo>> {
        let root = branches_root(&self.uri);
        let (store, base) = locate(&root, &self.storage).await?;
        let listed = match store.inner.list_with_delimiter(Some(&base)).await {
            Ok(l) => l,
            Err(object_store::Error::NotFound { .. }) => return Ok(Vec::new()),
            Err(e) => {
                return Err(StoreError::Input(format!("cannot list {root}: {e}")));
            }
        };
        let mut out = Vec::new();
        for p in listed.common_prefixes {
            let Some(name) = p.filename().map(str::to_owned) else {
                continue;
            };
            let info = self
                .branch_info(&name)
                .await?
                .unwrap_or_else(|| BranchInfo {
                    uri: branch_uri(&self.uri, &name),
                    name,
                    from_version: 0,
                    created_at: String::new(),
                    version: 0,
                    applied: 0,
                    complete: false,
                });
            out.push(info);
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    /// What branch `name` is (none when there is no memlane branch by that name).
    async fn branch_info(&self, name: &str) -> Result<Option<BranchInfo>> {
        let uri = branch_uri(&self.uri, name);
        let Ok(b) = Store::open_with(&uri, self.storage.clone()).await else {
            return Ok(None);
        };
        let history = b.history().await?;
        let Some(first) = history
            .iter()
            .filter_map(|h| h.entry.clone())
            .find(|e| e.action == Action::Branch)
        else {
            return Ok(None);
        };
        Ok(Some(BranchInfo {
            name: name.to_owned(),
            uri,
            from_version: first.branched_from.as_ref().map_or(0, |o| o.version),
            created_at: first.at,
            version: b.version(),
            applied: b.state().applied.len(),
            complete: true,
        }))
    }

    /// Delete branch `name` (everything under `<store>.branches/<name>`, also what a
    /// killed `branch create` left).
    pub async fn delete_branch(&self, name: &str) -> Result<()> {
        check_name(name)?;
        let uri = branch_uri(&self.uri, name);
        let (store, base) = locate(&uri, &self.storage).await?;
        // a branch whose creation was killed has no memlane record yet: it goes too
        let any = store
            .inner
            .list(Some(&base))
            .next()
            .await
            .is_some_and(|r| r.is_ok());
        if !any {
            return Err(StoreError::NotFound { uri });
        }
        store.remove_dir_all(base).await?;
        Ok(())
    }
}
