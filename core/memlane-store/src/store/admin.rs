//! Operations on the store's life that take the migration lock: restore, adopt an
//! existing column as a space, abort an in-flight migration, contract a replaced
//! space, repair a checksum.

use std::sync::Arc;

use lance::dataset::transaction::{Operation, TransactionBuilder};
use memlane_core::schema::ID;
use memlane_core::{Action, HistoryEntry, Space};

use crate::convert::{self};
use crate::engine::commit::{self as engine, Options, Record as Sealed};
use crate::engine::record;
use crate::error::{Result, StoreError};

use super::{Store, now, read_state};

impl Store {
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
        let _lock = self.lock("memlane restore").await?;
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

    /// Declare an existing vector column of the dataset (e.g. one written by pylance or
    /// lancedb) as an embedding space, in a state-only commit. The column must be a
    /// fixed-size list of floats of the space's dimension; the dataset needs an `id`
    /// column of unique, non-null strings. The first adopted space becomes active.
    pub async fn adopt(&mut self, space: Space) -> Result<u64> {
        let space = space.validated()?;
        let _lock = self.lock("memlane adopt").await?;
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
        let _lock = self.lock("memlane abort").await?;
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

    /// Build a vector index on a space (the active one when `None`) outside a migration:
    /// the index is built, committed detached, and its recall proven there against
    /// exact search (at least `spec.min_recall()`, 0.9 by default) before it lands on
    /// the main line with the space's state recording it. Below the floor nothing lands
    /// and the error names the recall. Takes the migration lock.
    pub async fn create_index(
        &mut self,
        space: Option<&str>,
        spec: memlane_core::IndexSpec,
    ) -> Result<u64> {
        let _lock = self.lock("memlane create_index").await?;
        self.refresh().await?;
        self.ensure_intact()?;
        let mut sp = self.space(space)?.clone();
        sp.index = Some(spec.clone());
        let op = crate::ops::create_index::build(&self.ds, &sp, &spec).await?;
        let mut state = self.state.clone();
        if let Some(s) = state.spaces.iter_mut().find(|s| s.name == sp.name) {
            s.index = Some(spec.clone());
        }
        let mut entry = HistoryEntry::new(Action::Index, now());
        entry.reason = Some(format!("{} index on space `{}`", spec.kind, sp.name));
        entry.active_space.clone_from(&state.active_space);
        let rec = Sealed {
            state: Some(&state),
            entry: &entry,
        };
        let staged = engine::commit(
            &self.ds,
            op.clone(),
            rec,
            Options {
                detached: true,
                ..Options::default()
            },
        )
        .await?;
        let check = memlane_core::InvariantSpec::index_recall(&sp.name, spec.min_recall());
        let r = crate::checks::index::recall(&check, &staged, &sp).await?;
        if r.blocks() {
            return Err(StoreError::State(format!(
                "the {} index on `{}` was not kept: {}; raise its partitions' probes (nprobes), refine_factor or sub_vectors, or lower min_recall",
                spec.kind, sp.name, r.message
            )));
        }
        entry.reason = Some(format!(
            "{} index on space `{}` ({})",
            spec.kind, sp.name, r.message
        ));
        self.commit(op, Some(state), &entry, Options::default())
            .await
    }

    /// Drop a space that is no longer active (the contract of expand/contract): its
    /// vector and digest columns go, and searches can no longer pin it.
    /// Takes the migration lock.
    pub async fn contract(&mut self, space: &str, reason: &str) -> Result<u64> {
        let _lock = self.lock("memlane contract").await?;
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
        let _lock = self.lock("memlane contract --due").await?;
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
        let _lock = self.lock("memlane repair").await?;
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
