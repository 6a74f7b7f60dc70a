//! Writers: add, upsert and delete, each one sealed commit, retried on a conflict
//! with a concurrent writer or migrator; and records from files and JSON.

use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::{AsArray, RecordBatch, RecordBatchIterator};
use arrow::datatypes::SchemaRef;
use futures::TryStreamExt;
use lance::dataset::{InsertBuilder, WriteMode, WriteParams};
use memlane_core::schema::ID;
use memlane_core::{Action, HistoryEntry, StoreState};

use crate::convert::{self, conform};
use crate::embed::Embedder;
use crate::engine::commit::{self as engine, Backoff, Options, Record as Sealed};
use crate::error::{Result, StoreError};

use super::{AddReport, Record, Store, UpsertReport, now, now_micros};

/// Retries of a write (add, upsert, delete) that concurrent commits keep preempting.
const WRITE_RETRIES: u32 = 30;

/// Records as they will be written: conformed to the store schema, timestamped,
/// missing vectors embedded (`embedders` keyed by space name), digests set for every
/// supplied vector, all validated but for the ids' uniqueness across batches (see
/// [`convert::unique_ids`]). Each batch is prepared on its own, so a stream of batches
/// is never concatenated (and, when it already has the store's types, never copied).
/// Returns the rows embedded per space.
pub(super) fn prepare_batches(
    batches: &[RecordBatch],
    schema: &SchemaRef,
    state: &StoreState,
    embedders: &HashMap<String, Arc<dyn Embedder>>,
    checked: &crate::fingerprint::Checked,
) -> Result<(Vec<RecordBatch>, HashMap<String, u64>)> {
    let mut spaces = Vec::with_capacity(embedders.len());
    for (name, e) in embedders {
        let space = state
            .space(name)
            .ok_or_else(|| StoreError::unknown_space(name, state))?;
        crate::fingerprint::check_fingerprint(space, name, e, checked)?;
        spaces.push((name, space, e));
    }
    let required: Vec<&str> = state.active_space.iter().map(String::as_str).collect();
    let mut embedded: HashMap<String, u64> = embedders.keys().map(|k| (k.clone(), 0)).collect();
    let mut out = Vec::with_capacity(batches.len());
    for batch in batches.iter().filter(|b| b.num_rows() > 0) {
        let mut batch =
            convert::fill_timestamps(conform(batch, schema, &state.spaces)?, now_micros())?;
        for (name, space, e) in &spaces {
            let (b, n) = crate::vectors::fill_missing_vectors(&batch, space, e.as_ref())?;
            batch = b;
            *embedded.entry((*name).clone()).or_default() += n;
        }
        // a supplied vector is the embedding of the supplied content
        for space in &state.spaces {
            batch = crate::vectors::with_digests(&batch, space)?;
        }
        convert::check_rows(&batch, &state.spaces, &required)?;
        out.push(batch);
    }
    Ok((out, embedded))
}

impl Store {
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
                    self.set_head(Arc::new(ds), None);
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
        let (embedders, looked) =
            crate::embed::remembered::for_spaces(&self.state.spaces, embedders, &self.registry)?;
        self.keep_resolved(&looked, &embedders);
        prepare_batches(
            &batches,
            &self.schema(),
            &self.state,
            &embedders,
            &self.checked,
        )
        .map_err(|e| crate::embed::remembered::explain(e, &looked))
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
                    self.set_head(Arc::new(ds), None);
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
                .map_err(|e| self.sql_error("delete predicate", predicate, e))?;
            if d.num_deleted_rows == 0 {
                return Ok((0, self.version()));
            }
            let before = self.count().await?;
            entry.rows = Some((before, before.saturating_sub(d.num_deleted_rows)));
            let r =
                engine::commit_writer_tx(&self.ds, d.transaction, &entry, d.affected_rows).await;
            match r {
                Ok(ds) => {
                    self.set_head(Arc::new(ds), None);
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

    /// Read records from a file for this store: Arrow IPC (`.arrow`, `.ipc`,
    /// `.feather`) or JSON Lines (anything else).
    pub fn load_records(&self, path: &std::path::Path) -> Result<RecordBatch> {
        let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("");
        if matches!(ext, "arrow" | "ipc" | "feather") {
            crate::readers::read_ipc(path)
        } else {
            convert::json_to_batch(
                &crate::readers::read_jsonl(path)?,
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
}
