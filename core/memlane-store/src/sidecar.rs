//! Where a store lives (its URI and [`StorageOptions`]) and its side files under
//! `_memlane/`, read and written through the store's object store ([`SideFiles`]).
//!
//! Everything memlane keeps beside the Lance dataset lives under [`DIR`]; nothing in it
//! is needed to read the data (the state and history are in the commits), so losing it
//! costs work (a backfill's unsaved vectors, a cached adapter) or a warning, never data.
//! Side files go through the same object store as the dataset (local disk, `s3://`,
//! `gs://`, `az://`, …): no side file is read or written with `std::fs`.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use bytes::Bytes;
use futures::TryStreamExt;
use lance::io::{ObjectStore, ObjectStoreParams, ObjectStoreRegistry, StorageOptionsAccessor};
use object_store::path::Path;
use object_store::{ObjectStoreExt, PutMode, PutOptions, PutPayload, UpdateVersion};

use crate::error::{Result, StoreError};

/// The side directory inside a store.
pub(crate) const DIR: &str = "_memlane";
/// The newest memlane commit as last noted (see `engine::record::note_head`).
pub(crate) const HEAD: &str = "head.json";
/// The migration lock.
pub(crate) const LOCK: &str = "lock.json";
/// Vectors a backfill embedded but has not committed yet.
pub(crate) const BACKFILL: &str = "backfill";
/// Fitted query adapters (content-addressed).
pub(crate) const ADAPTERS: &str = "adapters";
/// Kept validation reports.
pub(crate) const VALIDATE: &str = "validate";

/// How to reach a store's object store, with the keys pylance and lancedb take as
/// `storage_options` (`aws_endpoint`, `aws_region`, `allow_http`,
/// `aws_access_key_id`, `aws_secret_access_key`, `aws_session_token`,
/// `google_service_account`, `azure_storage_account_name`, …). Lance also reads the
/// usual environment (`AWS_*`, `GOOGLE_*`, `AZURE_*`); options given here win.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StorageOptions(BTreeMap<String, String>);

impl StorageOptions {
    /// No options: a local store, or credentials from the environment.
    pub fn new() -> Self {
        Self::default()
    }

    /// Set one option.
    #[must_use]
    pub fn with(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.0.insert(key.into(), value.into());
        self
    }

    /// Parse `KEY=VALUE` (the CLI's `--storage-option`).
    pub fn parse_pair(s: &str) -> Result<(String, String)> {
        match s.split_once('=') {
            Some((k, v)) if !k.trim().is_empty() => Ok((k.trim().to_owned(), v.to_owned())),
            _ => Err(StoreError::Input(format!(
                "storage option `{s}` is not KEY=VALUE; write e.g. --storage-option aws_endpoint=http://127.0.0.1:9000"
            ))),
        }
    }

    /// The options as Lance takes them.
    pub fn to_map(&self) -> HashMap<String, String> {
        self.0.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
    }

    /// Whether none is set.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The object-store parameters Lance's writers and commit builders take.
    pub(crate) fn params(&self) -> ObjectStoreParams {
        ObjectStoreParams {
            storage_options_accessor: (!self.is_empty())
                .then(|| Arc::new(StorageOptionsAccessor::with_static_options(self.to_map()))),
            ..Default::default()
        }
    }
}

impl<K: Into<String>, V: Into<String>> FromIterator<(K, V)> for StorageOptions {
    fn from_iter<T: IntoIterator<Item = (K, V)>>(iter: T) -> Self {
        Self(
            iter.into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        )
    }
}

/// The local path of a store URI (`file://` or a plain path); `None` for object stores.
pub(crate) fn local_root(uri: &str) -> Option<std::path::PathBuf> {
    let p = uri.strip_prefix("file://").unwrap_or(uri);
    (!p.contains("://")).then(|| std::path::PathBuf::from(p))
}

/// A side file read back, with the version a conditional update names.
#[derive(Debug, Clone)]
pub(crate) struct SideFile {
    /// Its bytes.
    pub(crate) bytes: Bytes,
    /// Its version (e-tag and/or object version), for [`SideFiles::update`].
    pub(crate) version: UpdateVersion,
}

/// What a conditional write found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Put {
    /// Written.
    Done,
    /// Another writer got there first (the file exists, or changed since it was read).
    Lost,
    /// The backend cannot write conditionally (local disk cannot update conditionally).
    Unsupported,
}

/// The `_memlane/` directory of a store, on its object store.
#[derive(Debug, Clone)]
pub struct SideFiles {
    store: Arc<ObjectStore>,
    /// `<store root>/_memlane`.
    root: Path,
    /// The store's URI, for messages.
    uri: String,
}

impl SideFiles {
    /// The side files of the store at `uri` (no dataset needed: `unlock` works on a
    /// store that does not open).
    pub async fn open(uri: &str, storage: &StorageOptions) -> Result<Self> {
        let registry = Arc::new(ObjectStoreRegistry::default());
        let (store, base) =
            ObjectStore::from_uri_and_params(registry, uri, &storage.params()).await?;
        Ok(Self::at(store, &base, uri))
    }

    /// The side files of the store whose dataset is `ds`, opened from `uri`.
    pub(crate) async fn of(ds: &lance::Dataset, uri: &str) -> Result<Self> {
        let store = ds.object_store(None).await?;
        let data = ds.data_dir();
        let base = data.as_ref().strip_suffix("data").unwrap_or(data.as_ref());
        Ok(Self::at(store, &Path::from(base), uri))
    }

    /// The side files of a store whose root is `base` on `store`.
    pub(crate) fn at(store: Arc<ObjectStore>, base: &Path, uri: &str) -> Self {
        Self {
            store,
            root: base.clone().join(DIR),
            uri: uri.trim_end_matches('/').to_owned(),
        }
    }

    /// The store's URI.
    pub(crate) fn uri(&self) -> &str {
        &self.uri
    }

    /// Whether the backend is a local file system (no conditional update there).
    pub(crate) fn is_local(&self) -> bool {
        self.store.is_local()
    }

    /// The object path of `name` (which may hold `/`).
    fn path(&self, name: &str) -> Path {
        name.split('/')
            .filter(|p| !p.is_empty())
            .fold(self.root.clone(), |p, part| p.join(part))
    }

    /// How a side file is named in messages: `<uri>/_memlane/<name>`.
    pub(crate) fn display(&self, name: &str) -> String {
        format!("{}/{DIR}/{name}", self.uri)
    }

    fn err(&self, name: &str, e: impl std::fmt::Display) -> StoreError {
        StoreError::Storage {
            path: self.display(name),
            message: e.to_string(),
        }
    }

    /// Read a side file; `None` when it does not exist.
    pub(crate) async fn get(&self, name: &str) -> Result<Option<SideFile>> {
        match self
            .store
            .inner
            .get_opts(&self.path(name), Default::default())
            .await
        {
            Ok(r) => {
                let version = UpdateVersion {
                    e_tag: r.meta.e_tag.clone(),
                    version: r.meta.version.clone(),
                };
                let bytes = r.bytes().await.map_err(|e| self.err(name, e))?;
                Ok(Some(SideFile { bytes, version }))
            }
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(self.err(name, e)),
        }
    }

    /// Write a side file whole (atomically: a reader sees the old or the new bytes).
    pub(crate) async fn put(&self, name: &str, bytes: impl Into<Bytes>) -> Result<()> {
        self.put_mode(name, bytes.into(), PutMode::Overwrite)
            .await
            .and_then(|p| match p {
                Put::Done => Ok(()),
                _ => Err(self.err(name, "an unconditional write was refused")),
            })
    }

    /// Create a side file unless it exists.
    pub(crate) async fn create(&self, name: &str, bytes: impl Into<Bytes>) -> Result<Put> {
        self.put_mode(name, bytes.into(), PutMode::Create).await
    }

    /// Replace a side file if it is still at `version`.
    pub(crate) async fn update(
        &self,
        name: &str,
        bytes: impl Into<Bytes>,
        version: UpdateVersion,
    ) -> Result<Put> {
        if self.is_local() {
            return Ok(Put::Unsupported);
        }
        self.put_mode(name, bytes.into(), PutMode::Update(version))
            .await
    }

    async fn put_mode(&self, name: &str, bytes: Bytes, mode: PutMode) -> Result<Put> {
        let opts = PutOptions {
            mode,
            ..Default::default()
        };
        match self
            .store
            .inner
            .put_opts(&self.path(name), PutPayload::from(bytes), opts)
            .await
        {
            Ok(_) => Ok(Put::Done),
            Err(
                object_store::Error::AlreadyExists { .. }
                | object_store::Error::Precondition { .. },
            ) => Ok(Put::Lost),
            Err(object_store::Error::NotImplemented { .. }) => Ok(Put::Unsupported),
            Err(e) => Err(self.err(name, e)),
        }
    }

    /// Remove a side file (gone already is fine).
    pub(crate) async fn delete(&self, name: &str) -> Result<()> {
        match self.store.inner.delete(&self.path(name)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(self.err(name, e)),
        }
    }

    /// The names (relative to `_memlane/`) of the side files under `dir`, sorted.
    pub(crate) async fn list(&self, dir: &str) -> Result<Vec<String>> {
        let prefix = self.path(dir);
        let metas: Vec<_> = match self.store.inner.list(Some(&prefix)).try_collect().await {
            Ok(m) => m,
            Err(object_store::Error::NotFound { .. }) => return Ok(Vec::new()),
            Err(e) => return Err(self.err(dir, e)),
        };
        let root = format!("{}/", self.root.as_ref());
        let mut out: Vec<String> = metas
            .into_iter()
            .filter_map(|m| m.location.as_ref().strip_prefix(&root).map(str::to_owned))
            .collect();
        out.sort();
        Ok(out)
    }
}
