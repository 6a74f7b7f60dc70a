//! Reading: scans, search, coverage, history, tags and version names.

use arrow::array::RecordBatch;
use futures::TryStreamExt;

use crate::engine::record;
use crate::error::{Result, StoreError};

use super::{HistoryItem, Hit, SearchOptions, Searched, Store};

impl Store {
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
            self.check_fields(c)?;
            s.project(c)?;
        }
        if let Some(f) = filter {
            s.filter(f).map_err(|e| self.sql_error("filter", f, e))?;
        }
        s.try_into_stream()
            .await
            .map_err(|e| self.sql_error("filter", filter.unwrap_or(""), e))
    }

    /// The fields a caller sees (memlane's internal `<space column>__src` digests left
    /// out).
    pub fn user_fields(&self) -> Vec<String> {
        self.schema()
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .filter(|n| !n.ends_with("__src"))
            .collect()
    }

    /// Every name in `columns` is a field of the store.
    fn check_fields(&self, columns: &[&str]) -> Result<()> {
        let schema = self.schema();
        match columns.iter().find(|c| schema.field_with_name(c).is_err()) {
            None => Ok(()),
            Some(c) => Err(StoreError::Input(format!(
                "the store has no field `{c}`; its fields are {}",
                self.user_fields().join(", ")
            ))),
        }
    }

    /// A SQL expression Lance refused, as the caller's error (Lance's list of valid
    /// fields, which names internal columns, replaced by the store's own).
    pub(crate) fn sql_error(&self, what: &str, sql: &str, e: lance::Error) -> StoreError {
        if !matches!(e, lance::Error::InvalidInput { .. }) {
            return e.into();
        }
        let msg = crate::error::lance_message(&e);
        let msg = msg
            .split(". Valid fields are")
            .next()
            .unwrap_or(&msg)
            .trim_end_matches('.');
        let msg = msg.trim_start_matches("Invalid user input: ");
        StoreError::Input(format!(
            "{what} `{sql}` is not valid SQL over the store's fields ({msg}); the fields are {}",
            self.user_fields().join(", ")
        ))
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

    /// The `k` nearest records to `query` in a space (active space when `None`),
    /// optionally pre-filtered by SQL. Rows without a vector in that space are skipped.
    pub async fn search(
        &self,
        space: Option<&str>,
        query: &[f32],
        k: usize,
        filter: Option<&str>,
    ) -> Result<Vec<Hit>> {
        Ok(self
            .search_with(space, query, k, filter, &SearchOptions::default())
            .await?
            .hits)
    }

    /// [`Store::search`] with options (exact, nprobes, refine factor), saying whether
    /// the space's vector index answered.
    pub async fn search_with(
        &self,
        space: Option<&str>,
        query: &[f32],
        k: usize,
        filter: Option<&str>,
        opts: &SearchOptions,
    ) -> Result<Searched> {
        let space = self.space(space)?;
        if k == 0 {
            return Err(StoreError::Input(
                "k (the number of results) must be at least 1".into(),
            ));
        }
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
        let probe = crate::engine::scan::Probe {
            exact: opts.exact,
            nprobes: opts.nprobes,
            refine: opts.refine_factor,
        };
        if let Some(c) = &opts.columns {
            self.check_fields(&c.iter().map(String::as_str).collect::<Vec<_>>())?;
        }
        let columns = opts.columns.as_deref();
        let n = crate::engine::scan::nearest(&self.ds, space, query, k, filter, probe, columns)
            .await
            .map_err(|e| match (e, filter) {
                (StoreError::Lance(le), Some(f)) => self.sql_error("filter", f, le),
                (e, _) => e,
            })?;
        Ok(Searched {
            hits: n
                .hits
                .into_iter()
                .map(|(id, content, distance)| Hit {
                    id,
                    content,
                    distance,
                })
                .collect(),
            index: n.index,
            fallback: n.fallback,
            table: n.table,
        })
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
}
