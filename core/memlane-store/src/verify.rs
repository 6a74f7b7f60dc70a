//! `verify`: recompute the hash chain and check that the recorded state matches the data.

use std::fmt;

use memlane_core::migration::InvariantSpec;
use memlane_core::{Action, CheckKind, FieldType, InvariantResult, Migration};
use serde::{Deserialize, Serialize};

use std::collections::HashMap;

use crate::checks::records::ids_unique as audit_ids;
use crate::checks::vectors::audit as audit_vectors;
use crate::convert::core_type;
use crate::engine::record::{self, Recorded};
use crate::error::Result;
use crate::store::HistoryItem;
use crate::store::Store;

/// One verification check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Check {
    /// Check name.
    pub name: String,
    /// Whether it holds.
    pub ok: bool,
    /// Details.
    pub message: String,
}

/// The result of `verify`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct VerifyReport {
    /// Version verified.
    pub version: u64,
    /// Checks, in order.
    pub checks: Vec<Check>,
}

impl VerifyReport {
    /// Whether every check holds.
    pub fn ok(&self) -> bool {
        self.checks.iter().all(|c| c.ok)
    }
    fn push_result(&mut self, name: &str, res: &InvariantResult) {
        let msg = if res.sample_ids.is_empty() {
            res.message.clone()
        } else {
            format!("{} (e.g. {})", res.message, res.sample_ids.join(", "))
        };
        self.push(name, if res.passed { Ok(msg) } else { Err(msg) });
    }

    fn push(&mut self, name: &str, r: std::result::Result<String, String>) {
        let (ok, message) = match r {
            Ok(m) => (true, m),
            Err(m) => (false, m),
        };
        self.checks.push(Check {
            name: name.into(),
            ok,
            message,
        });
    }
}

impl fmt::Display for VerifyReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for c in &self.checks {
            writeln!(
                f,
                "{} {:<10} {}",
                if c.ok { "ok  " } else { "FAIL" },
                c.name,
                c.message
            )?;
        }
        write!(
            f,
            "version {}: {}",
            self.version,
            if self.ok() {
                "verified"
            } else {
                "verification FAILED"
            }
        )
    }
}

impl Store {
    /// Rows whose vector in `space` was embedded from other text than their content.
    async fn stale_vectors(
        &self,
        space: &memlane_core::Space,
    ) -> Result<std::result::Result<String, String>> {
        use arrow::array::{Array, AsArray};
        let dg = space.digest_column();
        let (mut checked, mut stale, mut samples) = (0u64, 0u64, Vec::new());
        for b in self
            .scan(
                Some(&[
                    memlane_core::schema::ID,
                    memlane_core::schema::CONTENT,
                    dg.as_str(),
                ]),
                None,
            )
            .await?
        {
            let (ids, text, d) = (
                b.column(0).as_string::<i32>(),
                b.column(1).as_string::<i32>(),
                b.column(2).as_fixed_size_binary(),
            );
            for i in 0..b.num_rows() {
                if text.is_null(i) || d.is_null(i) {
                    continue;
                }
                checked += 1;
                if d.value(i) != space.passage_digest(text.value(i)) {
                    stale += 1;
                    if samples.len() < memlane_core::report::SAMPLE_IDS {
                        samples.push(ids.value(i).to_owned());
                    }
                }
            }
        }
        Ok(if stale == 0 {
            Ok(format!(
                "{checked} vectors of `{}` embedded from their current content",
                space.name
            ))
        } else {
            Err(format!(
                "{stale} of {checked} vectors of `{}` were embedded from other text than the row's content (e.g. {}); re-embed them with `memlane apply`",
                space.name,
                samples.join(", ")
            ))
        })
    }

    /// Recompute the recorded hash chain (and compare with `files` when given), walk the
    /// sealed record of every version, check the Lance manifest, the data files against
    /// their recorded digests, the spaces' columns, the history's consistency, the row
    /// count of the last memlane commit, and the data (ids; active-space vectors).
    /// Every problem is a failed check naming the version, fragment or file: a corrupt
    /// store gives a report, not an error.
    pub async fn verify(&self, files: Option<&[Migration]>) -> Result<VerifyReport> {
        let st = &self.state();
        let mut r = VerifyReport {
            version: self.version(),
            checks: vec![],
        };
        r.push(
            "chain",
            memlane_core::chain::verify_recorded(st)
                .map(|()| format!("{} applied migration(s), checksums chain", st.applied.len())),
        );
        if let Some(files) = files {
            r.push(
                "folder",
                memlane_core::chain::reconcile(st, files)
                    .map(|rec| format!("applied files unchanged; {} pending", rec.pending.len()))
                    .map_err(|e| e.to_string()),
            );
        }
        let records = match record::walk(self.dataset()).await {
            Ok(recs) => recs,
            Err(e) => {
                r.push("record", Err(format!("the versions cannot be listed: {e}")));
                vec![]
            }
        };
        r.push("record", self.check_record(&records).await);
        r.push(
            "lance",
            self.dataset()
                .validate()
                .await
                .map(|()| "manifest and fragments consistent".into())
                .map_err(|e| crate::error::lance_message(&e)),
        );
        r.push("digests", or_failure(self.check_digests(&records).await));
        r.push("spaces", self.check_spaces());
        r.push(
            "indexes",
            or_failure(crate::checks::index::readable(self.dataset(), &self.state().spaces).await),
        );
        // read once for both checks
        match self.history().await {
            Ok(history) => {
                r.push("history", or_failure(self.check_history(&history).await));
                if let Some(Some(rows)) = or_report(&mut r, "rows", self.check_rows(&history).await)
                {
                    r.push("rows", rows);
                }
            }
            Err(e) => r.push("history", Err(format!("cannot be read: {e}"))),
        }
        self.check_data(&mut r).await;
        Ok(r)
    }

    /// Every version's record intact, every link of the chain to an existing version
    /// with the hash it recorded, the noted newest commit and every tag present.
    async fn check_record(&self, records: &[Recorded]) -> std::result::Result<String, String> {
        let mut bad = Vec::new();
        let by_version: HashMap<u64, &Recorded> = records.iter().map(|x| (x.version, x)).collect();
        let mut sealed = 0;
        for rec in records {
            if let Some(p) = &rec.problem {
                bad.push(p.clone());
            }
            let Some(seal) = &rec.seal else { continue };
            sealed += 1;
            let Some(link) = &seal.prev else { continue };
            match by_version.get(&link.version).map(|x| x.seal.as_ref()) {
                None => bad.push(format!(
                    "version {} is built on version {}, which is missing (its manifest was deleted)",
                    rec.version, link.version
                )),
                Some(Some(p)) if p.hash == link.hash => {}
                Some(Some(p)) => bad.push(format!(
                    "version {} links to version {} with seal {}, but that version's seal is {}",
                    rec.version, link.version, link.hash, p.hash
                )),
                // a broken record there is reported on its own line
                Some(None) => {}
            }
        }
        if let Some((_, m)) = record::missing_head(self.dataset()).await {
            bad.push(m);
        }
        let versions: std::collections::HashSet<u64> = records.iter().map(|x| x.version).collect();
        match self.tags().await {
            Ok(tags) => {
                for (name, v) in tags {
                    if !versions.contains(&v) && v <= self.version() + 1 {
                        bad.push(format!(
                            "tag {name} points at version {v}, whose manifest is missing"
                        ));
                    } else if v > self.version() {
                        bad.push(format!(
                            "tag {name} points at version {v}, newer than the store's latest ({}): a newer manifest was deleted",
                            self.version()
                        ));
                    }
                }
            }
            Err(e) => bad.push(format!("tags cannot be read: {e}")),
        }
        if bad.is_empty() {
            Ok(format!(
                "{} version(s), {sealed} sealed by memlane, every seal and link intact",
                records.len()
            ))
        } else {
            Err(format!(
                "{}; restore the last intact version (`memlane restore STORE --to VERSION --reason ...`) or the store from a backup",
                bad.join("; ")
            ))
        }
    }

    fn check_spaces(&self) -> std::result::Result<String, String> {
        let schema = self.schema();
        let mut bad = Vec::new();
        for s in &self.state().spaces {
            match schema.field_with_name(&s.column) {
                Ok(f) if core_type(f.data_type()) == FieldType::Vector(s.dimension) => {}
                Ok(f) => bad.push(format!(
                    "space `{}`: column `{}` is {}, expected vector[{}]",
                    s.name,
                    s.column,
                    f.data_type(),
                    s.dimension
                )),
                Err(_) => bad.push(format!(
                    "space `{}`: column `{}` is missing",
                    s.name, s.column
                )),
            }
        }
        if bad.is_empty() {
            Ok(format!(
                "{} space(s) match their columns",
                self.state().spaces.len()
            ))
        } else {
            Err(bad.join("; "))
        }
    }

    /// History: each applied migration's tag at its completing commit, no commits by
    /// another writer after memlane's last.
    async fn check_history(
        &self,
        history: &[HistoryItem],
    ) -> Result<std::result::Result<String, String>> {
        let mut problems = Vec::new();
        let mut notes: Vec<String> = Vec::new();
        // commits by another writer after memlane's last: an index another tool built
        // (lancedb's `create_index`) changes no data and is noted; anything else fails
        let mut external = 0;
        let mut foreign_indexes = Vec::new();
        for h in history {
            if h.entry.is_some() {
                external = 0;
                foreign_indexes.clear();
            } else if h.operation == "CreateIndex" {
                foreign_indexes.push(h.version);
            } else {
                external += 1;
            }
        }
        let tags = self.tags().await?;
        // a branch's history starts at its branch commit: what was applied before it
        // completed on the store it came from
        let origin = history
            .iter()
            .filter_map(|h| h.entry.as_ref())
            .find(|e| e.action == Action::Branch)
            .and_then(|e| e.branched_from.clone());
        for a in &self.state().applied {
            let done = history.iter().rev().find(|h| {
                h.entry
                    .as_ref()
                    .is_some_and(|e| e.action == Action::Migration && e.migration == Some(a.id))
            });
            let prefix = format!("migration-{:04}-", a.id);
            let tag = tags.iter().find(|(n, _)| n.starts_with(&prefix));
            match (done, tag) {
                (None, _) if origin.is_some() => {
                    if let Some(o) = &origin {
                        notes.push(format!(
                            "{} was applied on {} before the branch at version {}",
                            a.file, o.uri, o.version
                        ));
                    }
                }
                (None, _) => problems.push(format!(
                    "applied migration {} has no completing commit in history",
                    a.file
                )),
                (Some(h), Some((_, v))) if *v == h.version => {}
                (Some(h), Some((n, v))) => problems.push(format!(
                    "tag {n} points at version {v}, but {} completed at version {}; the next `memlane apply` moves it",
                    a.file, h.version
                )),
                (Some(h), None) => notes.push(format!(
                    "{} (version {}) has no tag yet; the next `memlane apply` creates it",
                    a.file, h.version
                )),
            }
        }
        if external > 0 {
            problems.push(format!(
                "{external} commit(s) by another writer after memlane's last commit"
            ));
        }
        if !foreign_indexes.is_empty() {
            notes.push(format!(
                "{} index commit(s) by another writer (version(s) {}): an index changes no data",
                foreign_indexes.len(),
                foreign_indexes
                    .iter()
                    .map(u64::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        let mut msg = format!("{} version(s), recorded by memlane", history.len());
        for n in &notes {
            msg.push_str("; ");
            msg.push_str(n);
        }
        Ok(if problems.is_empty() {
            Ok(msg)
        } else {
            Err(problems.join("; "))
        })
    }

    /// The row count recorded by the last memlane commit (when it was not rebased).
    async fn check_rows(
        &self,
        history: &[HistoryItem],
    ) -> Result<Option<std::result::Result<String, String>>> {
        let rows = self.count().await?;
        // a count recorded before a commit that was rebased over concurrent commits
        // (read_version + 1 < version) cannot be compared
        let Some(last) = history
            .last()
            .filter(|h| h.read_version + 1 == h.version)
            .and_then(|h| h.entry.as_ref())
        else {
            return Ok(None);
        };
        let recorded = last
            .report
            .as_ref()
            .map(|rep| rep.rows_after)
            .or(last.rows.map(|(_, a)| a));
        Ok(Some(match recorded {
            Some(n) if n == rows => Ok(format!("{rows} rows, as recorded")),
            Some(n) => Err(format!(
                "store has {rows} rows but the last commit recorded {n}"
            )),
            None => Ok(format!("{rows} rows")),
        }))
    }

    /// ids unique; the active space's vectors valid and current.
    async fn check_data(&self, r: &mut VerifyReport) {
        let ids = audit_ids(
            self.dataset(),
            &InvariantSpec::builtin(CheckKind::IdsUnique),
        )
        .await;
        if let Some(ids) = or_report(r, "ids", ids) {
            r.push_result("ids", &ids);
        }
        let schema = self.schema();
        let Some(space) = self.state().active() else {
            return;
        };
        if schema.field_with_name(&space.column).is_err() {
            return;
        }
        let spec = InvariantSpec::builtin(CheckKind::VectorsValid);
        let v = audit_vectors(self.dataset(), space, true, &spec, None).await;
        if let Some(v) = or_report(r, "vectors", v) {
            r.push_result("vectors", &v);
        }
        if schema.field_with_name(&space.digest_column()).is_ok()
            && schema
                .field_with_name(memlane_core::schema::CONTENT)
                .is_ok()
            && let Some(c) = or_report(r, "current", self.stale_vectors(space).await)
        {
            r.push("current", c);
        }
    }
}

/// A check that could not run is a failure naming why.
fn or_failure(
    r: Result<std::result::Result<String, String>>,
) -> std::result::Result<String, String> {
    r.unwrap_or_else(|e| Err(format!("cannot be checked: {e}")))
}

/// The value of a check, or a failed line in the report when it could not run (a
/// corrupt or missing data file ends the scan).
fn or_report<T>(r: &mut VerifyReport, name: &str, v: Result<T>) -> Option<T> {
    match v {
        Ok(x) => Some(x),
        Err(e) => {
            r.push(
                name,
                Err(format!(
                    "cannot be checked: {e}; the data files are damaged or missing (see `digests`)"
                )),
            );
            None
        }
    }
}

impl crate::verdict::Verdict for VerifyReport {
    fn ok(&self) -> bool {
        VerifyReport::ok(self)
    }
}
