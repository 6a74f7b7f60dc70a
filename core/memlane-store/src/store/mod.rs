//! The store: a Lance dataset plus the memlane state carried in its commits.

use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::{RecordBatch, RecordBatchIterator};
use arrow::datatypes::{Schema, SchemaRef};
use lance::Dataset;
use lance::dataset::transaction::Operation;
use lance::dataset::{CommitBuilder, InsertBuilder, WriteMode, WriteParams};
use memlane_core::{Action, HistoryEntry, Snapshot, Space, StoreState};

use crate::convert::{self, base_schema};
use crate::embed::Embedder;
use crate::engine::commit::{self as engine, Options, Record as Sealed};
use crate::engine::record;
use crate::error::{Result, StoreError};
use crate::sidecar::{SideFiles, StorageOptions};

mod admin;
mod branch;
mod embedders;
mod read;
mod records;
mod update;
mod write;

use write::prepare_batches;

pub use branch::{BranchInfo, branch_uri, branches_root};
pub(crate) use branch::{check_name, locate};
pub use records::{
    AddReport, CreateOptions, HistoryItem, Hit, Record, SearchOptions, Searched, UpsertReport,
};

/// A memlane store.
pub struct Store {
    uri: String,
    /// How to reach the object store (given at open or create, used by every reopen).
    storage: StorageOptions,
    /// Its `_memlane/` side files, on the same object store.
    side: SideFiles,
    /// The head this handle reads (written only by `set_head` and the refreshes).
    ds: Arc<Dataset>,
    /// The state at the head (idem).
    state: StoreState,
    /// Adapters read so far, by digest.
    pub(crate) adapters: Arc<std::sync::Mutex<HashMap<String, Arc<memlane_core::compat::Adapter>>>>,
    /// Embedders whose fingerprint this handle checked.
    pub(crate) checked: crate::fingerprint::Checked,
    /// Named embedders the spaces' remembered references resolve in.
    registry: crate::embed::remembered::Registry,
    /// The newest broken record (version, what), when the store's record was edited.
    broken: Option<(u64, String)>,
    /// The version the state was read from.
    state_version: Option<u64>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("uri", &self.uri)
            .field("version", &self.ds.version_id())
            .finish_non_exhaustive()
    }
}

/// Now, RFC 3339.
/// A store that cannot be written where the caller asked, naming the place.
fn cannot_create(uri: &str, e: lance::Error) -> StoreError {
    match e {
        lance::Error::IO { .. } => StoreError::Storage {
            path: uri.to_owned(),
            message: format!(
                "cannot create a store there ({}); check that the parent directory (or bucket) exists and is writable",
                crate::error::lance_message(&e)
            ),
        },
        e => e.into(),
    }
}

pub(crate) fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

fn now_micros() -> i64 {
    chrono::Utc::now().timestamp_micros()
}

/// The memlane state at `ds`'s version, from the newest commit at or before it that
/// carries one (see [`crate::engine::record::head`]).
pub(crate) async fn read_state(ds: &Dataset) -> Result<Option<StoreState>> {
    Ok(crate::engine::record::head(ds).await?.state)
}

async fn open_dataset(uri: &str, storage: &StorageOptions) -> Result<Dataset> {
    let opened = lance::dataset::builder::DatasetBuilder::from_uri(uri)
        .with_storage_options(storage.to_map())
        .load()
        .await;
    match opened {
        Ok(ds) => Ok(ds),
        Err(lance::Error::DatasetNotFound { .. } | lance::Error::NotFound { .. }) => {
            Err(StoreError::NotFound {
                uri: uri.to_owned(),
            })
        }
        Err(e) => match crate::sidecar::local_root(uri) {
            Some(p) if p.is_file() => Err(StoreError::NotAStore {
                uri: uri.to_owned(),
                reason: "it is a file, not a directory".into(),
            }),
            Some(p) if p.is_dir() && !p.join("_versions").is_dir() => Err(StoreError::NotAStore {
                uri: uri.to_owned(),
                reason: "the directory has no Lance `_versions/`".into(),
            }),
            _ => Err(e.into()),
        },
    }
}

impl Store {
    /// Create a store, optionally with initial records (`None`, one batch or a
    /// stream of batches), in one commit. Rows lacking a vector of a space get one
    /// from `embedders` (keyed by space name).
    pub async fn create(
        uri: &str,
        opts: CreateOptions,
        records: impl IntoIterator<Item = RecordBatch>,
        embedders: &HashMap<String, Arc<dyn Embedder>>,
    ) -> Result<Store> {
        let records: Vec<RecordBatch> = records.into_iter().collect();
        let storage = opts.storage.clone();
        if open_dataset(uri, &storage).await.is_ok() {
            return Err(StoreError::Exists {
                uri: uri.to_owned(),
            });
        }
        let spaces = opts
            .spaces
            .into_iter()
            .map(Space::validated)
            .collect::<memlane_core::Result<Vec<_>>>()?;
        for r in spaces.iter().filter_map(|s| s.embedder.as_deref()) {
            crate::embed::remembered::check_reference(r)?;
        }
        let (embedders, looked) =
            crate::embed::remembered::for_spaces(&spaces, embedders, &opts.registry)?;
        let embedders = &embedders;
        let mut fields = opts.fields;
        // extra columns of the initial records become metadata fields
        if let Some(b) = records.first() {
            let base = base_schema(opts.plain, &fields, &spaces);
            fields.extend(convert::extra_fields(b.schema_ref(), &base, &spaces));
        }
        for f in &fields {
            memlane_core::space::check_name(&f.name).map_err(StoreError::Input)?;
        }
        let schema: SchemaRef = Arc::new(base_schema(opts.plain, &fields, &spaces));
        let mut state = StoreState {
            spaces,
            rows_per_fragment: opts.rows_per_fragment,
            ..StoreState::default()
        };
        state.active_space = state.spaces.first().map(|s| s.name.clone());
        // the embedders a store is created with fingerprint their spaces: a different
        // model behind the same name is refused later
        for space in &mut state.spaces {
            if let (None, Some(e)) = (&space.fingerprint, embedders.get(&space.name)) {
                space.fingerprint = Some(crate::fingerprint::record_fingerprint(
                    space,
                    &space.name,
                    e.as_ref(),
                )?);
            }
        }
        let checked = crate::fingerprint::Checked::default();
        let (batches, _) = prepare_batches(&records, &schema, &state, embedders, &checked)
            .map_err(|e| crate::embed::remembered::explain(e, &looked))?;
        drop(records);
        convert::unique_ids(&batches)?;
        let rows: u64 = batches.iter().map(|b| b.num_rows() as u64).sum();
        let mut entry = HistoryEntry::new(Action::Create, now());
        entry.rows = Some((0, rows));
        entry.active_space.clone_from(&state.active_space);
        let params = WriteParams {
            mode: WriteMode::Create,
            enable_stable_row_ids: true,
            max_rows_per_file: state.fragment_rows(),
            store_params: Some(storage.params()),
            ..Default::default()
        };
        let reader = RecordBatchIterator::new(batches.into_iter().map(Ok), schema.clone());
        let mut tx = InsertBuilder::new(uri)
            .with_params(&params)
            .execute_uncommitted_stream(reader)
            .await
            .map_err(|e| cannot_create(uri, e))?;
        // the data files' digests, from the bytes just written, go into the seal
        let registry = Arc::new(lance::io::ObjectStoreRegistry::default());
        let (os, base) =
            lance::io::ObjectStore::from_uri_and_params(registry, uri, &storage.params()).await?;
        let files = crate::engine::files::new_files(None, &tx.operation);
        let digests =
            crate::engine::files::digests(&os, &base.clone().join("data"), &files).await?;
        let rec = Sealed {
            state: Some(&state),
            entry: &entry,
        };
        let props = engine::properties(None, &tx.operation, rec, None, Some(digests)).await?;
        tx.transaction_properties = Some(Arc::new(props));
        let seal = record::seal_hash(&tx);
        let ds = CommitBuilder::new(uri)
            .with_store_params(storage.params())
            .use_stable_row_ids(true)
            .execute(tx)
            .await
            .map_err(|e| cannot_create(uri, e))?;
        record::note_head(&ds, seal).await;
        let version = ds.version_id();
        Ok(Store {
            uri: uri.to_owned(),
            side: SideFiles::at(os, &base, uri),
            storage,
            ds: Arc::new(ds),
            state,
            adapters: Arc::default(),
            checked: crate::fingerprint::Checked::default(),
            registry: opts.registry,
            broken: None,
            state_version: Some(version),
        })
    }

    /// Create a store from JSON records (one object each), inferring extra metadata
    /// fields from the records.
    pub async fn create_from_json(
        uri: &str,
        mut opts: CreateOptions,
        records: &[serde_json::Value],
        embedders: &HashMap<String, Arc<dyn Embedder>>,
    ) -> Result<Store> {
        let probe = base_schema(opts.plain, &opts.fields, &opts.spaces);
        let mut known = probe
            .fields()
            .iter()
            .map(|f| (**f).clone())
            .collect::<Vec<_>>();
        // space names are accepted as keys for their vectors
        known.extend(opts.spaces.iter().map(|s| {
            arrow::datatypes::Field::new(&s.name, arrow::datatypes::DataType::Null, true)
        }));
        let extra = convert::infer_fields(records, &Schema::new(known));
        opts.fields.extend(extra);
        let spaces: Vec<Space> = opts
            .spaces
            .iter()
            .cloned()
            .map(Space::validated)
            .collect::<memlane_core::Result<_>>()?;
        let schema: SchemaRef = Arc::new(base_schema(opts.plain, &opts.fields, &spaces));
        let batch = convert::json_to_batch(records, &schema, &spaces)?;
        Store::create(uri, opts, Some(batch), embedders).await
    }

    /// Open an existing store (a Lance dataset; one that memlane never wrote opens
    /// with an empty state).
    pub async fn open(uri: &str) -> Result<Store> {
        Self::open_with(uri, StorageOptions::new()).await
    }

    /// Open an existing store on an object store reached with `storage` (the
    /// `storage_options` pylance and lancedb take: endpoint, region, credentials, …).
    pub async fn open_with(uri: &str, storage: StorageOptions) -> Result<Store> {
        let ds = open_dataset(uri, &storage).await?;
        let head = record::latest_head(&ds).await?;
        let side = SideFiles::of(&ds, uri).await?;
        Ok(Store {
            uri: uri.to_owned(),
            storage,
            side,
            ds: Arc::new(ds),
            state: head.state.unwrap_or_default(),
            adapters: Arc::default(),
            checked: crate::fingerprint::Checked::default(),
            registry: crate::embed::remembered::Registry::default(),
            broken: head.broken,
            state_version: head.state_version,
        })
    }

    /// Refuse to change a store whose record is broken (edited or missing state,
    /// history or manifest), naming the version and the repair.
    pub fn ensure_intact(&self) -> Result<()> {
        match &self.broken {
            None => Ok(()),
            Some((version, problem)) => Err(StoreError::Integrity {
                version: *version,
                problem: problem.clone(),
                fix: match self.state_version {
                    Some(good) => format!(
                        "the last intact state is version {good}: make it current with `memlane restore {} --to {good} --reason \"...\"` (a forward commit), then run `memlane verify`",
                        self.uri
                    ),
                    None => "no intact state is left; restore the store from a backup".into(),
                },
            }),
        }
    }

    /// Commit `op` with the history `entry` and, when it changes, the new `state`: the
    /// one place a [`Store`] moves its dataset and state forward.
    pub(crate) async fn commit(
        &mut self,
        op: Operation,
        state: Option<StoreState>,
        entry: &HistoryEntry,
        opts: Options,
    ) -> Result<u64> {
        let rec = Sealed {
            state: state.as_ref(),
            entry,
        };
        let ds = engine::commit(&self.ds, op, rec, opts).await?;
        self.set_head(Arc::new(ds), state);
        Ok(self.version())
    }

    /// [`Store::commit`] with the digests of the files `op` adds already taken (a
    /// promoted branch commit: its copied files were hashed to check them against the
    /// branch's seal).
    pub(crate) async fn commit_with_files(
        &mut self,
        op: Operation,
        state: Option<StoreState>,
        entry: &HistoryEntry,
        files: std::collections::BTreeMap<String, memlane_core::FileDigest>,
    ) -> Result<u64> {
        let rec = Sealed {
            state: state.as_ref(),
            entry,
        };
        let ds = engine::commit_with_files(&self.ds, op, rec, files, Options::default()).await?;
        self.set_head(Arc::new(ds), state);
        Ok(self.version())
    }

    /// Move to a committed dataset (and state, when the commit changed it).
    pub(crate) fn set_head(&mut self, ds: Arc<Dataset>, state: Option<StoreState>) {
        if let Some(s) = state {
            self.state = s;
            self.state_version = Some(ds.version_id());
        }
        self.ds = ds;
    }

    /// Re-read the latest version.
    pub async fn refresh(&mut self) -> Result<()> {
        let ds = open_dataset(&self.uri, &self.storage).await?;
        let head = record::latest_head(&ds).await?;
        self.state = head.state.unwrap_or_default();
        self.state_version = head.state_version;
        self.broken = head.broken;
        self.ds = Arc::new(ds);
        Ok(())
    }

    /// Re-read the latest data version, keeping the state in hand (the migrator's).
    pub(crate) async fn refresh_data(&mut self) -> Result<()> {
        self.ds = Arc::new(open_dataset(&self.uri, &self.storage).await?);
        Ok(())
    }

    /// The store URI.
    pub fn uri(&self) -> &str {
        &self.uri
    }

    /// How the store's object store is reached.
    pub fn storage(&self) -> &StorageOptions {
        &self.storage
    }

    /// The store's `_memlane/` side files.
    pub fn side_files(&self) -> &SideFiles {
        &self.side
    }

    /// The recorded state.
    pub fn state(&self) -> &StoreState {
        &self.state
    }

    /// The current Lance version.
    pub fn version(&self) -> u64 {
        self.ds.version_id()
    }

    /// The underlying Lance dataset.
    pub fn dataset(&self) -> &Arc<Dataset> {
        &self.ds
    }

    /// The Arrow schema of records.
    pub fn schema(&self) -> SchemaRef {
        Arc::new(Schema::from(self.ds.schema()))
    }

    /// Live rows.
    pub async fn count(&self) -> Result<u64> {
        Ok(self.ds.count_rows(None).await? as u64)
    }

    /// What the planner needs to know.
    pub async fn snapshot(&self) -> Result<Snapshot> {
        Ok(Snapshot {
            version: self.version(),
            rows: self.count().await?,
            fields: convert::fields_of(&self.schema()),
            state: self.state.clone(),
        })
    }

    /// A space by name, or the active space when `None`.
    pub fn space(&self, name: Option<&str>) -> Result<&Space> {
        match name {
            Some(n) => self
                .state
                .space(n)
                .ok_or_else(|| StoreError::unknown_space(n, &self.state)),
            None => self
                .state
                .active()
                .ok_or_else(|| StoreError::unknown_space("(active)", &self.state)),
        }
    }

    /// Take the migration lock for `holder` (one migrator or restore at a time).
    pub(crate) async fn lock(&self, holder: &str) -> Result<crate::lock::LockGuard> {
        self.lock_for(holder, std::time::Duration::from_secs(60))
            .await
    }

    /// Take the migration lock for `holder` with a lease of `lease`.
    pub(crate) async fn lock_for(
        &self,
        holder: &str,
        lease: std::time::Duration,
    ) -> Result<crate::lock::LockGuard> {
        crate::lock::acquire(&self.side, &self.storage, holder, lease).await
    }

    /// Commit a state-only change (no data change) as one Lance commit.
    pub(crate) async fn commit_state(
        &mut self,
        state: StoreState,
        entry: HistoryEntry,
    ) -> Result<u64> {
        self.ensure_intact()?;
        let op = crate::ops::state_only_op(&state);
        self.commit(op, Some(state), &entry, Options::default())
            .await
    }
}
