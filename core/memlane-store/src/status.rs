//! `status`: where a store stands — version, rows, spaces, migrations applied, in flight
//! and pending, a running re-embed's progress, contracts due, and the lock. One report
//! for the CLI (text is its `Display`, `--json` its serialization) and the Python
//! package.

use std::fmt;
use std::path::Path;

use memlane_core::schema::FieldDef;
use memlane_core::{AppliedMigration, InFlight, PendingContract, ReembedCheckpoint, Space};
use serde::Serialize;

use crate::error::Result;
use crate::lock::LockInfo;
use crate::store::Store;

/// Where a store stands.
#[derive(Debug, Clone, Serialize)]
pub struct Status {
    /// The store's URI.
    pub store: String,
    /// Current Lance version.
    pub version: u64,
    /// Live rows.
    pub rows: u64,
    /// Embedding spaces (fingerprints summarised: canary count and tolerance).
    #[serde(serialize_with = "spaces_summary")]
    pub spaces: Vec<Space>,
    /// The space search uses by default.
    pub active_space: Option<String>,
    /// Migrations applied, oldest first.
    pub applied: Vec<AppliedMigration>,
    /// A migration stopped or running part-way.
    pub in_flight: Option<InFlight>,
    /// A running online re-embed: its checkpoint with percent and ETA.
    pub reembed: Option<ReembedProgress>,
    /// Replaced spaces scheduled to be dropped.
    pub pending_contracts: Vec<PendingContract>,
    /// Migrations of the given folder not applied yet.
    pub pending: Option<usize>,
    /// Why the given folder cannot be planned (it disagrees with the history...).
    pub pending_error: Option<String>,
    /// Who holds the migration lock.
    pub lock: Option<LockInfo>,
    /// The store's fields.
    pub fields: Vec<FieldDef>,
}

/// A re-embed's checkpoint with what follows from it.
#[derive(Debug, Clone, Serialize)]
pub struct ReembedProgress {
    /// The checkpoint.
    #[serde(flatten)]
    pub checkpoint: ReembedCheckpoint,
    /// Share of live rows with a current vector.
    pub percent: f64,
    /// Estimated seconds left at the current rate.
    pub eta_secs: Option<f64>,
}

fn spaces_summary<S: serde::Serializer>(
    spaces: &[Space],
    s: S,
) -> std::result::Result<S::Ok, S::Error> {
    space_summaries(spaces).serialize(s)
}

/// Spaces as reports show them: a fingerprint summarised as its canary count and
/// tolerance (its vectors are the store's business, not the reader's).
pub fn space_summaries(spaces: &[Space]) -> Vec<serde_json::Value> {
    spaces
        .iter()
        .map(|sp| {
            let mut v = serde_json::to_value(sp).unwrap_or_default();
            if let (Some(o), Some(fp)) = (v.as_object_mut(), &sp.fingerprint) {
                o.insert(
                    "fingerprint".into(),
                    serde_json::json!({
                        "canaries": fp.texts.len(),
                        "tolerance": memlane_core::compat::DEFAULT_TOLERANCE,
                    }),
                );
            }
            v
        })
        .collect()
}

impl Store {
    /// The store's status; with a migrations folder, how many of its migrations are
    /// pending (a folder that cannot be read or disagrees with the history is reported
    /// in `pending_error`, not an error: status is what one runs to find out why).
    pub async fn status(&self, migrations: Option<&Path>) -> Result<Status> {
        let snap = self.snapshot().await?;
        let pending = match migrations.map(crate::readers::read_folder) {
            Some(Ok(m)) => Some(self.plan(&m).await.map(|p| p.migrations.len())),
            Some(Err(e)) => Some(Err(e)),
            None => None,
        };
        let reembed = snap
            .state
            .in_flight
            .as_ref()
            .and_then(|f| f.checkpoint.clone())
            .map(|c| ReembedProgress {
                percent: c.percent(),
                eta_secs: c.eta_secs(),
                checkpoint: c,
            });
        Ok(Status {
            store: self.uri().to_owned(),
            version: snap.version,
            rows: snap.rows,
            spaces: snap.state.spaces,
            active_space: snap.state.active_space,
            applied: snap.state.applied,
            in_flight: snap.state.in_flight,
            reembed,
            pending_contracts: snap.state.pending_contracts,
            pending: pending.as_ref().and_then(|p| p.as_ref().ok().copied()),
            pending_error: pending.and_then(|p| p.err().map(|e| e.to_string())),
            lock: crate::lock::read_lock(self.side_files()).await,
            fields: snap.fields,
        })
    }
}

impl fmt::Display for Status {
    /// One line per fact.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "store    {}", self.store)?;
        writeln!(f, "version  {}   rows {}", self.version, self.rows)?;
        for s in &self.spaces {
            let mark = if self.active_space.as_deref() == Some(s.name.as_str()) {
                "*"
            } else {
                " "
            };
            let index = s
                .index
                .as_ref()
                .map(|ix| format!("  index {} (nprobes {})", ix.kind, ix.nprobes()))
                .unwrap_or_default();
            let embedder = s
                .embedder
                .as_ref()
                .map(|e| format!("  embedder {e}"))
                .unwrap_or_default();
            writeln!(f, "space  {mark} {}{index}{embedder}", s.identity())?;
        }
        if self.spaces.is_empty() {
            writeln!(f, "spaces   none")?;
        }
        match self.applied.last() {
            Some(a) => writeln!(
                f,
                "applied  {} migration(s), last {} at {}",
                self.applied.len(),
                a.file,
                a.applied_at
            )?,
            None => writeln!(f, "applied  none")?,
        }
        self.fmt_flight(f)?;
        match (&self.pending, &self.pending_error) {
            (Some(p), _) => writeln!(f, "pending  {p} migration(s)")?,
            (None, Some(e)) => writeln!(f, "pending  REFUSED: {e}")?,
            (None, None) => {}
        }
        for p in &self.pending_contracts {
            writeln!(
                f,
                "contract `{}` after {} (retention {} of migration {:04})",
                p.space, p.due, p.retention, p.migration
            )?;
        }
        if let Some(l) = &self.lock {
            writeln!(
                f,
                "LOCKED   by {} (pid {} on {}), lease until {}",
                l.holder,
                l.pid,
                l.host,
                l.expires.to_rfc3339()
            )?;
            if let Some(a) = &l.activity {
                writeln!(f, "         now: {a}")?;
            }
        }
        Ok(())
    }
}

impl Status {
    /// The running re-embed and the migration in flight.
    fn fmt_flight(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(r) = &self.reembed {
            let cp = &r.checkpoint;
            let eta = r.eta_secs.map_or("?".to_owned(), |s| format!("{s:.0}s"));
            writeln!(
                f,
                "RE-EMBED {} of `{}`: {:.1}% ({} of {} rows current), {} embedded, {:.0} rows/s, ETA {eta}, lag {} rows",
                cp.phase,
                cp.space,
                r.percent,
                cp.total - cp.remaining.min(cp.total),
                cp.total,
                cp.embedded,
                cp.rows_per_sec,
                cp.remaining
            )?;
        }
        if let Some(fl) = &self.in_flight {
            writeln!(
                f,
                "IN FLIGHT {} — {}/{} steps committed; `memlane apply` resumes it",
                fl.file, fl.steps_done, fl.steps_total
            )?;
        }
        Ok(())
    }
}
