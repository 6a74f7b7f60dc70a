//! The store: a Lance dataset plus the memlane state carried in its commits.

use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::{Array, AsArray, Float32Array, RecordBatch, RecordBatchIterator};
use arrow::datatypes::{Schema, SchemaRef};
use futures::TryStreamExt;
use lance::Dataset;
use lance::dataset::transaction::{Operation, TransactionBuilder};
use lance::dataset::{CommitBuilder, InsertBuilder, WriteMode, WriteParams};
use lance_linalg::distance::DistanceType;
use memlane_core::schema::{CONTENT, ID};
use memlane_core::{Action, FieldDef, HistoryEntry, Metric, Snapshot, Space, StoreState};
use serde::{Deserialize, Serialize};

use crate::convert::{self, base_schema, conform};
use crate::embed::Embedder;
use crate::engine::commit::{self as engine, Backoff, Options, Record as Sealed};
use crate::engine::record;
use crate::error::{Result, StoreError};

/// Retries of a write (add, upsert, delete) that concurrent commits keep preempting.
const WRITE_RETRIES: u32 = 30;

/// Options of a new store.
#[derive(Debug, Clone, Default)]
pub struct CreateOptions {
    /// A plain vector collection: `id`, `content`, metadata and spaces, without the
    /// agent-memory fields.
    pub plain: bool,
    /// Embedding spaces to start with (the first one becomes active).
    pub spaces: Vec<Space>,
    /// Extra metadata fields.
    pub fields: Vec<FieldDef>,
    /// Rows per Lance fragment (default 65 536); a re-embed commits per fragment.
    pub rows_per_fragment: Option<usize>,
}

/// One search hit.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Hit {
    /// Record id.
    pub id: String,
    /// Record content.
    pub content: Option<String>,
    /// Distance in the space's metric (smaller is closer).
    pub distance: f32,
}

/// One version of the store, as `history` shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HistoryItem {
    /// Lance version.
    pub version: u64,
    /// Commit time (RFC 3339).
    pub timestamp: String,
    /// Lance operation name.
    pub operation: String,
    /// memlane's record of the commit (none for commits by other writers).
    pub entry: Option<HistoryEntry>,
    /// Tags pointing at this version.
    pub tags: Vec<String>,
    /// The version the commit was computed from (`version - 1` unless it was rebased
    /// over concurrent commits).
    pub read_version: u64,
}

/// What `upsert` did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UpsertReport {
    /// Rows inserted.
    pub inserted: u64,
    /// Rows updated.
    pub updated: u64,
    /// Vectors computed by embedders, per space.
    pub embedded: HashMap<String, u64>,
    /// Version committed.
    pub version: u64,
}

/// What `add` did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AddReport {
    /// Rows added.
    pub added: u64,
    /// Rows before.
    pub rows_before: u64,
    /// Rows after.
    pub rows_after: u64,
    /// Vectors computed by embedders, per space.
    pub embedded: HashMap<String, u64>,
    /// Version committed.
    pub version: u64,
}

/// A record for [`Store::add_records`]: typed access for Rust callers.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Record {
    /// Unique id.
    pub id: String,
    /// Text that gets (re-)embedded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<String>,
    /// Other fields by name (memory fields such as `kind`, `agent_id`, `created_at`
    /// as RFC 3339, and metadata).
    #[serde(flatten)]
    pub fields: serde_json::Map<String, serde_json::Value>,
    /// Vectors by space name.
    #[serde(flatten)]
    pub vectors: HashMap<String, Vec<f32>>,
}

impl Record {
    /// A record with an id and content.
    pub fn new(id: impl Into<String>, content: impl Into<String>) -> Self {
        Record {
            id: id.into(),
            content: Some(content.into()),
            ..Default::default()
        }
    }

    /// Set a field.
    #[must_use]
    pub fn field(mut self, name: &str, value: impl Into<serde_json::Value>) -> Self {
        self.fields.insert(name.to_owned(), value.into());
        self
    }

    /// Set the vector of a space.
    #[must_use]
    pub fn vector(mut self, space: &str, v: Vec<f32>) -> Self {
        self.vectors.insert(space.to_owned(), v);
        self
    }
}

/// A memlane store.
pub struct Store {
    uri: String,
    pub(crate) ds: Arc<Dataset>,
    pub(crate) state: StoreState,
    /// Adapters read so far, by digest.
    pub(crate) adapters: Arc<std::sync::Mutex<HashMap<String, Arc<memlane_core::compat::Adapter>>>>,
    /// Embedders whose fingerprint this handle checked.
    pub(crate) checked: crate::compat::Checked,
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
pub(crate) fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

fn now_micros() -> i64 {
    chrono::Utc::now().timestamp_micros()
}

/// Records as they will be written: conformed to the store schema, timestamped,
/// missing vectors embedded (`embedders` keyed by space name), digests set for every
/// supplied vector, all validated but for the ids' uniqueness across batches (see
/// [`convert::unique_ids`]). Each batch is prepared on its own, so a stream of batches
/// is never concatenated (and, when it already has the store's types, never copied).
/// Returns the rows embedded per space.
fn prepare_batches(
    batches: &[RecordBatch],
    schema: &SchemaRef,
    state: &StoreState,
    embedders: &HashMap<String, Arc<dyn Embedder>>,
    checked: &crate::compat::Checked,
) -> Result<(Vec<RecordBatch>, HashMap<String, u64>)> {
    let mut spaces = Vec::with_capacity(embedders.len());
    for (name, e) in embedders {
        let space = state.space(name).ok_or_else(|| StoreError::UnknownSpace {
            name: name.clone(),
            known: state
                .spaces
                .iter()
                .map(|s| s.name.as_str())
                .collect::<Vec<_>>()
                .join(", "),
        })?;
        crate::compat::check_fingerprint(space, name, e, checked)?;
        spaces.push((name, space, e));
    }
    let required: Vec<&str> = state.active_space.iter().map(String::as_str).collect();
    let mut embedded: HashMap<String, u64> = embedders.keys().map(|k| (k.clone(), 0)).collect();
    let mut out = Vec::with_capacity(batches.len());
    for batch in batches.iter().filter(|b| b.num_rows() > 0) {
        let mut batch =
            convert::fill_timestamps(conform(batch, schema, &state.spaces)?, now_micros())?;
        for (name, space, e) in &spaces {
            let (b, n) = crate::ops::fill_missing_vectors(&batch, space, e.as_ref())?;
            batch = b;
            *embedded.entry((*name).clone()).or_default() += n;
        }
        // a supplied vector is the embedding of the supplied content
        for space in &state.spaces {
            batch = crate::ops::with_digests(&batch, space)?;
        }
        convert::validate_rows(&batch, &state.spaces, &required)?;
        out.push(batch);
    }
    Ok((out, embedded))
}

/// The memlane state at `ds`'s version, from the newest commit at or before it that
/// carries one (see [`crate::engine::record::head`]).
pub(crate) async fn read_state(ds: &Dataset) -> Result<Option<StoreState>> {
    Ok(crate::engine::record::head(ds).await?.state)
}

fn metric(m: Metric) -> DistanceType {
    match m {
        Metric::Cosine => DistanceType::Cosine,
        Metric::Dot => DistanceType::Dot,
        Metric::L2 => DistanceType::L2,
    }
}

async fn open_dataset(uri: &str) -> Result<Dataset> {
    match Dataset::open(uri).await {
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
        if Dataset::open(uri).await.is_ok() {
            return Err(StoreError::Exists {
                uri: uri.to_owned(),
            });
        }
        let spaces = opts
            .spaces
            .into_iter()
            .map(Space::validated)
            .collect::<memlane_core::Result<Vec<_>>>()?;
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
                space.fingerprint = Some(crate::compat::record_fingerprint(
                    space,
                    &space.name,
                    e.as_ref(),
                )?);
            }
        }
        let checked = crate::compat::Checked::default();
        let (batches, _) = prepare_batches(&records, &schema, &state, embedders, &checked)?;
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
            ..Default::default()
        };
        let reader = RecordBatchIterator::new(batches.into_iter().map(Ok), schema.clone());
        let mut tx = InsertBuilder::new(uri)
            .with_params(&params)
            .execute_uncommitted_stream(reader)
            .await?;
        // the data files' digests, from the bytes just written, go into the seal
        let (os, base) = lance::io::ObjectStore::from_uri(uri).await?;
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
            .use_stable_row_ids(true)
            .execute(tx)
            .await?;
        record::note_head(&ds, seal).await;
        let version = ds.version_id();
        Ok(Store {
            uri: uri.to_owned(),
            ds: Arc::new(ds),
            state,
            adapters: Arc::default(),
            checked: crate::compat::Checked::default(),
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
        let ds = open_dataset(uri).await?;
        let head = record::latest_head(&ds).await?;
        Ok(Store {
            uri: uri.to_owned(),
            ds: Arc::new(ds),
            state: head.state.unwrap_or_default(),
            adapters: Arc::default(),
            checked: crate::compat::Checked::default(),
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
        let ds = open_dataset(&self.uri).await?;
        let head = record::latest_head(&ds).await?;
        self.state = head.state.unwrap_or_default();
        self.state_version = head.state_version;
        self.broken = head.broken;
        self.ds = Arc::new(ds);
        Ok(())
    }

    /// The store URI.
    pub fn uri(&self) -> &str {
        &self.uri
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
        let known = || {
            self.state
                .spaces
                .iter()
                .map(|s| s.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        };
        match name {
            Some(n) => self.state.space(n).ok_or_else(|| StoreError::UnknownSpace {
                name: n.to_owned(),
                known: known(),
            }),
            None => self.state.active().ok_or_else(|| StoreError::UnknownSpace {
                name: "(active)".into(),
                known: if self.state.spaces.is_empty() {
                    "none; add one with an `add_space` migration".into()
                } else {
                    known()
                },
            }),
        }
    }

    /// Read columns (all when `None`) of the live rows, optionally filtered by SQL.
    pub async fn scan(
        &self,
        columns: Option<&[&str]>,
        filter: Option<&str>,
    ) -> Result<Vec<RecordBatch>> {
        Ok(self
            .scan_stream(columns, filter)
            .await?
            .try_collect()
            .await?)
    }

    /// Like [`Store::scan`], one batch at a time (memory stays flat on large stores).
    pub async fn scan_stream(
        &self,
        columns: Option<&[&str]>,
        filter: Option<&str>,
    ) -> Result<lance::dataset::scanner::DatasetRecordBatchStream> {
        let mut s = self.ds.scan();
        if let Some(c) = columns {
            s.project(c)?;
        }
        if let Some(f) = filter {
            s.filter(f)?;
        }
        Ok(s.try_into_stream().await?)
    }

    /// Which of `wanted` the store already holds (one scan of the id column).
    async fn existing_ids(&self, wanted: &convert::IdSet<'_>) -> Result<Vec<String>> {
        let mut found = Vec::new();
        if self.count().await? == 0 {
            return Ok(found);
        }
        let mut stream = self.scan_stream(Some(&[ID]), None).await?;
        while let Some(b) = stream.try_next().await? {
            for id in b.column(0).as_string::<i32>().iter().flatten() {
                if wanted.contains(id) {
                    found.push(id.to_owned());
                }
            }
        }
        Ok(found)
    }

    /// Add records (any column order; missing nullable fields become null). Rows
    /// without a vector for a space get one from `embedders` (keyed by space name)
    /// when given. Everything is validated first; nothing lands on error.
    pub async fn add(
        &mut self,
        batch: RecordBatch,
        embedders: &HashMap<String, Arc<dyn Embedder>>,
    ) -> Result<AddReport> {
        self.add_batches(vec![batch], embedders).await
    }

    /// [`Store::add`] of a stream of batches (all of one schema), in one commit. The
    /// batches are checked and written one by one, never concatenated: records that
    /// already have the store's types are written without a copy.
    pub async fn add_batches(
        &mut self,
        batches: Vec<RecordBatch>,
        embedders: &HashMap<String, Arc<dyn Embedder>>,
    ) -> Result<AddReport> {
        let (batches, embedded) = self.prepare(batches, embedders).await?;
        let schema = self.schema();
        {
            let ids = convert::unique_ids(&batches)?;
            let clash = self.existing_ids(&ids).await?;
            if let Some(first) = clash.first() {
                return Err(StoreError::Input(format!(
                    "{} record id(s) already exist in the store (e.g. `{first}`); ids must be unique, pick new ids",
                    clash.len()
                )));
            }
        }
        let before = self.count().await?;
        let added = batches.iter().map(|b| b.num_rows() as u64).sum::<u64>();
        if added == 0 {
            // nothing to write: no new version
            return Ok(AddReport {
                added,
                rows_before: before,
                rows_after: before,
                embedded,
                version: self.version(),
            });
        }
        let mut entry = HistoryEntry::new(Action::Add, now());
        entry.rows = Some((before, before + added));
        entry.active_space.clone_from(&self.state.active_space);
        let params = WriteParams {
            mode: WriteMode::Append,
            max_rows_per_file: self.state.fragment_rows(),
            ..Default::default()
        };
        let reader = RecordBatchIterator::new(batches.into_iter().map(Ok), schema);
        // the files are written once; only the commit is redone when another commit
        // preempts it (a migration's checkpoint, another writer)
        let op = InsertBuilder::new(self.ds.clone())
            .with_params(&params)
            .execute_uncommitted_stream(reader)
            .await?
            .operation;
        // hashed once: a retry commits the same files on a new head
        let digests = crate::engine::files::added_digests(&self.ds, &op).await?;
        let mut backoff = Backoff::new(WRITE_RETRIES);
        loop {
            let r = engine::commit_with_files(
                &self.ds,
                op.clone(),
                Sealed {
                    state: None,
                    entry: &entry,
                },
                digests.clone(),
                Options::default(),
            )
            .await;
            match r {
                Ok(ds) => {
                    self.ds = Arc::new(ds);
                    break;
                }
                Err(e) if backoff.retry(&e).await => self.refresh_data().await?,
                Err(e) => return Err(self.write_conflict(e, "add", backoff.retries())),
            }
        }
        Ok(AddReport {
            added,
            rows_before: before,
            rows_after: before + added,
            embedded,
            version: self.version(),
        })
    }

    /// Conform, timestamp, embed (where embedders are given) and validate records
    /// against the latest state (a migration may have changed spaces meanwhile).
    async fn prepare(
        &mut self,
        batches: Vec<RecordBatch>,
        embedders: &HashMap<String, Arc<dyn Embedder>>,
    ) -> Result<(Vec<RecordBatch>, HashMap<String, u64>)> {
        self.refresh().await?;
        self.ensure_intact()?;
        prepare_batches(
            &batches,
            &self.schema(),
            &self.state,
            embedders,
            &self.checked,
        )
    }

    /// Insert or update records by id (an update replaces the whole record). Rows
    /// lacking a vector get one from `embedders` (keyed by space name); a space without
    /// an embedder keeps no stale vector: a changed record's vector must be supplied,
    /// or a running re-embed catches it up.
    pub async fn upsert(
        &mut self,
        batch: RecordBatch,
        embedders: &HashMap<String, Arc<dyn Embedder>>,
    ) -> Result<UpsertReport> {
        self.upsert_batches(vec![batch], embedders).await
    }

    /// [`Store::upsert`] of a stream of batches (all of one schema), in one commit.
    pub async fn upsert_batches(
        &mut self,
        batches: Vec<RecordBatch>,
        embedders: &HashMap<String, Arc<dyn Embedder>>,
    ) -> Result<UpsertReport> {
        let (batches, embedded) = self.prepare(batches, embedders).await?;
        convert::unique_ids(&batches)?;
        if batches.is_empty() {
            return Ok(UpsertReport {
                inserted: 0,
                updated: 0,
                embedded,
                version: self.version(),
            });
        }
        let schema = self.schema();
        let mut entry = HistoryEntry::new(Action::Upsert, now());
        entry.active_space.clone_from(&self.state.active_space);
        let mut backoff = Backoff::new(WRITE_RETRIES);
        loop {
            // the merge is redone on the new head after a conflict: the rows it matches
            // may have moved (a migration's checkpoint, another writer's upsert)
            let mut b =
                lance::dataset::MergeInsertBuilder::try_new(self.ds.clone(), vec![ID.to_owned()])?;
            b.when_matched(lance::dataset::WhenMatched::UpdateAll)
                .when_not_matched(lance::dataset::WhenNotMatched::InsertAll);
            let job = b.try_build()?;
            let reader: Box<dyn arrow::array::RecordBatchReader + Send> = Box::new(
                RecordBatchIterator::new(batches.clone().into_iter().map(Ok), schema.clone()),
            );
            let un = job.execute_uncommitted(reader).await?;
            let r =
                engine::commit_writer_tx(&self.ds, un.transaction, &entry, un.affected_rows).await;
            match r {
                Ok(ds) => {
                    self.ds = Arc::new(ds);
                    return Ok(UpsertReport {
                        inserted: un.stats.num_inserted_rows,
                        updated: un.stats.num_updated_rows,
                        embedded,
                        version: self.version(),
                    });
                }
                Err(e) if backoff.retry(&e).await => self.refresh_data().await?,
                Err(e) => return Err(self.write_conflict(e, "upsert", backoff.retries())),
            }
        }
    }

    /// Delete the live rows matching a SQL predicate (e.g. `agent_id = 'a1' AND kind =
    /// 'message'`), in one commit; retried like [`Store::add`] when a concurrent commit
    /// preempts it. Returns the rows deleted and the version (unchanged when none matched).
    pub async fn delete(&mut self, predicate: &str) -> Result<(u64, u64)> {
        self.refresh().await?;
        self.ensure_intact()?;
        let mut entry = HistoryEntry::new(Action::Delete, now());
        entry.reason = Some(format!("delete where {predicate}"));
        entry.active_space.clone_from(&self.state.active_space);
        let mut backoff = Backoff::new(WRITE_RETRIES);
        loop {
            let d = lance::dataset::DeleteBuilder::new(self.ds.clone(), predicate)
                .execute_uncommitted()
                .await
                .map_err(|e| {
                    StoreError::Input(format!(
                        "delete predicate `{predicate}` is not valid SQL over the store's fields: {}",
                        crate::error::lance_message(&e)
                    ))
                })?;
            if d.num_deleted_rows == 0 {
                return Ok((0, self.version()));
            }
            let before = self.count().await?;
            entry.rows = Some((before, before.saturating_sub(d.num_deleted_rows)));
            let r =
                engine::commit_writer_tx(&self.ds, d.transaction, &entry, d.affected_rows).await;
            match r {
                Ok(ds) => {
                    self.ds = Arc::new(ds);
                    return Ok((d.num_deleted_rows, self.version()));
                }
                Err(e) if backoff.retry(&e).await => self.refresh_data().await?,
                Err(e) => return Err(self.write_conflict(e, "delete", backoff.retries())),
            }
        }
    }

    /// A write that still conflicts after its retries: name it and what to do.
    fn write_conflict(&self, e: StoreError, what: &str, retries: u32) -> StoreError {
        match crate::engine::commit::conflict(&e) {
            Some(_) => StoreError::Conflict {
                what: what.to_owned(),
                retries,
                message: e.to_string(),
            },
            None => e,
        }
    }

    /// Upsert JSON records (one object each).
    pub async fn upsert_json(
        &mut self,
        records: &[serde_json::Value],
        embedders: &HashMap<String, Arc<dyn Embedder>>,
    ) -> Result<UpsertReport> {
        let batch = convert::json_to_batch(records, &self.schema(), &self.state.spaces)?;
        self.upsert(batch, embedders).await
    }

    /// Re-read the latest data version, keeping the state in hand (the migrator's).
    pub(crate) async fn refresh_data(&mut self) -> Result<()> {
        self.ds = Arc::new(open_dataset(&self.uri).await?);
        Ok(())
    }

    /// Rows with a vector in `space` (active when `None`) and live rows: how much of
    /// the store a search in that space covers.
    pub async fn coverage(&self, space: Option<&str>) -> Result<(u64, u64)> {
        let sp = self.space(space)?;
        let with = self
            .ds
            .count_rows(Some(format!("{} IS NOT NULL", sp.column)))
            .await? as u64;
        Ok((with, self.count().await?))
    }

    /// Read records from a file for this store: Arrow IPC (`.arrow`, `.ipc`,
    /// `.feather`) or JSON Lines (anything else).
    pub fn load_records(&self, path: &std::path::Path) -> Result<RecordBatch> {
        let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("");
        if matches!(ext, "arrow" | "ipc" | "feather") {
            crate::io::read_ipc(path)
        } else {
            convert::json_to_batch(
                &crate::io::read_jsonl(path)?,
                &self.schema(),
                &self.state.spaces,
            )
        }
    }

    /// Add JSON records (one object each).
    pub async fn add_json(
        &mut self,
        records: &[serde_json::Value],
        embedders: &HashMap<String, Arc<dyn Embedder>>,
    ) -> Result<AddReport> {
        let batch = convert::json_to_batch(records, &self.schema(), &self.state.spaces)?;
        self.add(batch, embedders).await
    }

    /// Add typed records (see [`Record`]).
    pub async fn add_records(
        &mut self,
        records: &[Record],
        embedders: &HashMap<String, Arc<dyn Embedder>>,
    ) -> Result<AddReport> {
        let values = records
            .iter()
            .map(serde_json::to_value)
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(|e| StoreError::Internal(format!("record cannot be encoded: {e}")))?;
        self.add_json(&values, embedders).await
    }

    /// The `k` nearest records to `query` in a space (active space when `None`),
    /// optionally pre-filtered by SQL. Rows without a vector in that space are skipped.
    pub async fn search(
        &self,
        space: Option<&str>,
        query: &[f32],
        k: usize,
        filter: Option<&str>,
    ) -> Result<Vec<Hit>> {
        let space = self.space(space)?;
        if query.len() != space.dimension {
            return Err(StoreError::Input(format!(
                "query vector has dimension {} but space `{}` is {}-d; embed the query with that space's model ({})",
                query.len(),
                space.name,
                space.dimension,
                space.identity()
            )));
        }
        if query.iter().any(|x| !x.is_finite()) {
            return Err(StoreError::Input(
                "query vector has a non-finite value".into(),
            ));
        }
        let q = Float32Array::from(query.to_vec());
        let mut s = self.ds.scan();
        s.nearest(&space.column, &q, k)?;
        s.distance_metric(metric(space.metric));
        s.use_index(false);
        let has_content = self.ds.schema().field(CONTENT).is_some();
        let cols: Vec<&str> = if has_content {
            vec![ID, CONTENT, "_distance"]
        } else {
            vec![ID, "_distance"]
        };
        s.project(&cols)?;
        s.disable_scoring_autoprojection();
        let not_null = format!("{} IS NOT NULL", space.column);
        let f = match filter {
            Some(f) => format!("({f}) AND {not_null}"),
            None => not_null,
        };
        s.filter(&f)?;
        s.prefilter(true);
        let batches: Vec<RecordBatch> = s.try_into_stream().await?.try_collect().await?;
        let mut hits = Vec::new();
        for b in batches {
            let ids = b.column_by_name(ID).map(|c| c.as_string::<i32>().clone());
            let content = b
                .column_by_name(CONTENT)
                .map(|c| c.as_string::<i32>().clone());
            let dist = b
                .column_by_name("_distance")
                .map(|c| c.as_primitive::<arrow::datatypes::Float32Type>().clone());
            let (Some(ids), Some(dist)) = (ids, dist) else {
                continue;
            };
            for i in 0..b.num_rows() {
                hits.push(Hit {
                    id: ids.value(i).to_owned(),
                    content: content
                        .as_ref()
                        .and_then(|c| (!c.is_null(i)).then(|| c.value(i).to_owned())),
                    // float noise can push a self-match slightly below zero
                    distance: dist.value(i).max(0.0),
                });
            }
        }
        hits.sort_by(|a, b| a.distance.total_cmp(&b.distance));
        hits.truncate(k);
        Ok(hits)
    }

    /// Every version with memlane's record of it, oldest first.
    pub async fn history(&self) -> Result<Vec<HistoryItem>> {
        let tags = self.tags().await?;
        let mut out = Vec::new();
        let head = self.version();
        for v in self
            .ds
            .versions()
            .await?
            .into_iter()
            .filter(|v| v.version <= head)
        {
            let r = record::read(&self.ds, v.version).await?;
            let operation = r
                .operation
                .as_ref()
                .map_or_else(|| "?".to_owned(), |o| o.name().to_owned());
            let read_version = r.read_version;
            let mut entry = r.entry;
            // a step's report is written before its commit; the version is this one
            if let Some(r) = entry.as_mut().and_then(|e| e.report.as_mut()) {
                r.version.get_or_insert(v.version);
            }
            out.push(HistoryItem {
                version: v.version,
                timestamp: v
                    .timestamp
                    .to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
                operation,
                entry,
                read_version,
                tags: tags
                    .iter()
                    .filter(|(_, tv)| *tv == v.version)
                    .map(|(n, _)| n.clone())
                    .collect(),
            });
        }
        Ok(out)
    }

    /// Tags (name, version), by version.
    pub async fn tags(&self) -> Result<Vec<(String, u64)>> {
        let mut t: Vec<(String, u64)> = self
            .ds
            .tags()
            .list()
            .await?
            .into_iter()
            .map(|(n, c)| (n, c.version))
            .collect();
        t.sort_by(|a, b| a.1.cmp(&b.1).then(a.0.cmp(&b.0)));
        Ok(t)
    }

    /// Tag a version (the current one when `None`).
    pub async fn tag(&self, name: &str, version: Option<u64>) -> Result<u64> {
        let v = version.unwrap_or_else(|| self.version());
        self.ds.tags().create(name, v).await.map_err(|e| match e {
            lance::Error::RefConflict { .. } => {
                StoreError::State(format!("tag `{name}` already exists; pick another name"))
            }
            e => StoreError::Input(format!(
                "cannot tag version {v} as `{name}`: {}",
                crate::error::lance_message(&e)
            )),
        })?;
        Ok(v)
    }

    /// Resolve a version number or tag name.
    pub async fn resolve(&self, target: &str) -> Result<u64> {
        if let Ok(v) = target.parse::<u64>() {
            if self.ds.versions().await?.iter().any(|x| x.version == v) {
                return Ok(v);
            }
            return Err(StoreError::UnknownVersion(target.to_owned()));
        }
        self.ds
            .tags()
            .get_version(target)
            .await
            .map_err(|_| StoreError::UnknownVersion(target.to_owned()))
    }

    /// Forward-only restore: commit a new version whose data and state equal those of
    /// `target` (a version or tag), recording why.
    /// Takes the migration lock. Allowed on a store whose record is broken: restoring
    /// the last intact version is the repair.
    pub async fn restore(&mut self, target: &str, reason: &str) -> Result<u64> {
        if reason.trim().is_empty() {
            return Err(StoreError::Input(
                "a restore needs a reason: --reason \"why\"".into(),
            ));
        }
        let _lock = self.lock("memlane restore")?;
        self.refresh_data().await?;
        let v = self.resolve(target).await?;
        let old = self.ds.checkout_version(v).await?;
        let head = record::head(&old).await?;
        if let Some((bad, problem)) = head.broken.filter(|(b, _)| *b == v) {
            return Err(StoreError::Integrity {
                version: bad,
                problem,
                fix: format!(
                    "restore an older version whose record is intact{}",
                    head.state_version
                        .map(|g| format!(" (the newest is {g})"))
                        .unwrap_or_default()
                ),
            });
        }
        let state = head.state.unwrap_or_default();
        let mut entry = HistoryEntry::new(Action::Restore, now());
        entry.reason = Some(reason.to_owned());
        entry.restored_from = Some(v);
        entry.rows = Some((self.count().await?, old.count_rows(None).await? as u64));
        entry.active_space.clone_from(&state.active_space);
        let op = Operation::Restore { version: v };
        let rec = Sealed {
            state: Some(&state),
            entry: &entry,
        };
        let prev = record::tip(&self.ds).await?;
        let props = engine::properties(None, &op, rec, prev, None).await?;
        let tx = TransactionBuilder::new(self.ds.version_id(), op)
            .transaction_properties(Some(Arc::new(props)))
            .build();
        let ds = engine::commit_sealed(&Arc::new(old), tx, Options::default()).await?;
        self.set_head(Arc::new(ds), Some(state));
        self.broken = None;
        Ok(self.version())
    }

    /// Take the migration lock for `holder` (one migrator or restore at a time).
    pub(crate) fn lock(&self, holder: &str) -> Result<crate::lock::LockGuard> {
        crate::lock::acquire(&self.uri, holder, std::time::Duration::from_secs(60))
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

    /// Declare an existing vector column of the dataset (e.g. one written by pylance or
    /// lancedb) as an embedding space, in a state-only commit. The column must be a
    /// fixed-size list of floats of the space's dimension; the dataset needs an `id`
    /// column of unique, non-null strings. The first adopted space becomes active.
    pub async fn adopt(&mut self, space: Space) -> Result<u64> {
        let space = space.validated()?;
        let _lock = self.lock("memlane adopt")?;
        self.refresh().await?;
        if self.state.space(&space.name).is_some() {
            return Err(StoreError::Input(format!(
                "space `{}` already exists",
                space.name
            )));
        }
        let schema = self.schema();
        match schema.field_with_name(ID).map(|f| f.data_type().clone()) {
            Ok(arrow::datatypes::DataType::Utf8) => {}
            Ok(other) => {
                return Err(StoreError::Input(format!(
                    "column `id` is {other}; memlane needs string ids (add a string `id` column with pylance, then adopt)"
                )));
            }
            Err(_) => {
                return Err(StoreError::Input(
                    "the dataset has no `id` column; add one with unique string ids, then adopt"
                        .into(),
                ));
            }
        }
        let col = schema.field_with_name(&space.column).map_err(|_| {
            StoreError::Input(format!(
                "no column `{}` to adopt as space `{}` (columns: {})",
                space.column,
                space.name,
                schema
                    .fields()
                    .iter()
                    .map(|f| f.name().as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ))
        })?;
        if convert::core_type(col.data_type()) != memlane_core::FieldType::Vector(space.dimension) {
            return Err(StoreError::Input(format!(
                "column `{}` is {}, not a fixed-size list of {} float32 values",
                space.column,
                col.data_type(),
                space.dimension
            )));
        }
        let spec = memlane_core::InvariantSpec::builtin(memlane_core::CheckKind::IdsUnique);
        let ids = crate::checks::records::ids_unique(&self.ds, &spec).await?;
        if !ids.passed {
            return Err(StoreError::Input(format!(
                "cannot adopt: {} (e.g. {})",
                ids.message,
                ids.sample_ids.join(", ")
            )));
        }
        let mut state = self.state.clone();
        if state.active_space.is_none() {
            let spec = memlane_core::InvariantSpec::builtin(memlane_core::CheckKind::VectorsValid);
            let v = crate::checks::vectors::audit(&self.ds, &space, true, &spec, None).await?;
            if !v.passed {
                return Err(StoreError::Input(format!(
                    "cannot make `{}` the active space: {} (e.g. {})",
                    space.name,
                    v.message,
                    v.sample_ids.join(", ")
                )));
            }
            state.active_space = Some(space.name.clone());
        }
        state.spaces.push(space);
        let mut entry = HistoryEntry::new(Action::Adopt, now());
        let n = self.count().await?;
        entry.rows = Some((n, n));
        entry.active_space.clone_from(&state.active_space);
        self.commit_state(state, entry).await
    }

    /// Abort the in-flight migration: allowed while every committed step of it only
    /// added (spaces, fields, vectors); drops what it added and restores the state of
    /// before it. Rows written meanwhile stay. After a destructive step (or once
    /// applied), a migration only rolls forward.
    pub async fn abort(&mut self, reason: &str) -> Result<u64> {
        let _lock = self.lock("memlane abort")?;
        self.refresh().await?;
        self.ensure_intact()?;
        let Some(f) = self.state.in_flight.clone() else {
            return Err(StoreError::State("no migration is in flight; an applied migration only rolls forward (write a new one, or `memlane restore`)".into()));
        };
        let history = self.history().await?;
        let destructive: Vec<String> = history
            .iter()
            .filter_map(|h| h.entry.as_ref())
            .filter(|e| {
                e.migration == Some(f.id) && matches!(e.action, Action::Step | Action::Migration)
            })
            .filter_map(|e| e.report.as_ref())
            .filter(|r| {
                matches!(
                    r.op.as_str(),
                    "drop_field"
                        | "rename_field"
                        | "cast_field"
                        | "backfill"
                        | "normalize"
                        | "delete_where"
                        | "dedupe"
                )
            })
            .map(|r| format!("step {} ({})", r.step + 1, r.op))
            .collect();
        if !destructive.is_empty() {
            return Err(StoreError::State(format!(
                "{} committed {} which cannot be undone by an abort; roll forward with a new migration, or `memlane restore`",
                f.file,
                destructive.join(", ")
            )));
        }
        let before = self.ds.checkout_version(f.started_version).await?;
        let old = read_state(&before).await?.unwrap_or_default();
        let keep: Vec<String> = before
            .schema()
            .fields
            .iter()
            .map(|x| x.name.clone())
            .collect();
        let added: Vec<String> = self
            .ds
            .schema()
            .fields
            .iter()
            .map(|x| x.name.clone())
            .filter(|n| !keep.contains(n))
            .collect();
        let mut state = self.state.clone();
        state.in_flight = None;
        state.spaces = old.spaces;
        state.active_space = old.active_space;
        let mut entry = HistoryEntry::new(Action::Abort, now());
        entry.migration = Some(f.id);
        entry.file = Some(f.file.clone());
        entry.reason = Some(reason.to_owned());
        entry.active_space.clone_from(&state.active_space);
        let op = if added.is_empty() {
            crate::ops::state_only_op(&state)
        } else {
            let refs: Vec<&str> = added.iter().map(String::as_str).collect();
            Operation::Project {
                schema: self.ds.plan_drop_columns(&refs)?,
                preserves_nullability: true,
            }
        };
        self.commit(op, Some(state), &entry, Options::default())
            .await
    }

    /// Drop a space that is no longer active (the contract of expand/contract): its
    /// vector and digest columns go, and searches can no longer pin it.
    /// Takes the migration lock.
    pub async fn contract(&mut self, space: &str, reason: &str) -> Result<u64> {
        let _lock = self.lock("memlane contract")?;
        self.contract_locked(space, reason).await
    }

    /// [`Store::contract`] for a caller that holds the lock.
    async fn contract_locked(&mut self, space: &str, reason: &str) -> Result<u64> {
        self.refresh().await?;
        self.ensure_intact()?;
        let sp = self.space(Some(space))?.clone();
        if self.state.active_space.as_deref() == Some(space) {
            return Err(StoreError::State(format!(
                "`{space}` is the active space; switch to another one first (a migration with `set_active_space`)"
            )));
        }
        if self.state.in_flight.is_some() {
            return Err(StoreError::State(
                "a migration is in flight; contract after it completes".into(),
            ));
        }
        let mut cols = vec![sp.column.clone()];
        if self.ds.schema().field(&sp.digest_column()).is_some() {
            cols.push(sp.digest_column());
        }
        let refs: Vec<&str> = cols.iter().map(String::as_str).collect();
        let mut state = self.state.clone();
        state.spaces.retain(|s| s.name != space);
        state.pending_contracts.retain(|p| p.space != space);
        let mut entry = HistoryEntry::new(Action::Contract, now());
        entry.reason = Some(format!("drop space `{space}`: {reason}"));
        entry.active_space.clone_from(&state.active_space);
        let op = Operation::Project {
            schema: self.ds.plan_drop_columns(&refs)?,
            preserves_nullability: true,
        };
        self.commit(op, Some(state), &entry, Options::default())
            .await
    }

    /// Drop the replaced spaces whose retention (`contract_after`) has passed; returns
    /// (space, version) per drop. Takes the migration lock.
    pub async fn contract_due(&mut self) -> Result<Vec<(String, u64)>> {
        let _lock = self.lock("memlane contract --due")?;
        self.contract_due_locked().await
    }

    /// [`Store::contract_due`] for a caller that holds the lock (the migrator).
    pub(crate) async fn contract_due_locked(&mut self) -> Result<Vec<(String, u64)>> {
        self.refresh().await?;
        if self.state.in_flight.is_some() {
            return Ok(vec![]);
        }
        let now = chrono::Utc::now();
        let due: Vec<memlane_core::PendingContract> = self
            .state
            .pending_contracts
            .iter()
            .filter(|p| {
                chrono::DateTime::parse_from_rfc3339(&p.due).is_ok_and(|d| d <= now)
                    && self.state.active_space.as_deref() != Some(p.space.as_str())
            })
            .cloned()
            .collect();
        let mut out = Vec::new();
        for p in due {
            if self.state.space(&p.space).is_none() {
                continue;
            }
            let reason = format!(
                "retention {} after migration {:04} passed (due {})",
                p.retention, p.migration, p.due
            );
            let v = self.contract_locked(&p.space, &reason).await?;
            out.push((p.space, v));
        }
        Ok(out)
    }

    /// Accept the current content of applied migration `id` (a deliberate edit).
    pub async fn repair(
        &mut self,
        files: &[memlane_core::Migration],
        id: u32,
        reason: &str,
    ) -> Result<u64> {
        let _lock = self.lock("memlane repair")?;
        self.refresh().await?;
        let at = now();
        let state = memlane_core::chain::repair(&self.state, files, id, reason, &at)
            .map_err(StoreError::Input)?;
        let mut entry = HistoryEntry::new(Action::Repair, at);
        entry.migration = Some(id);
        entry.reason = Some(reason.to_owned());
        entry.file = files.iter().find(|m| m.id == id).map(|m| m.file.clone());
        entry.active_space.clone_from(&state.active_space);
        self.commit_state(state, entry).await
    }
}
