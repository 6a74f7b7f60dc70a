//! What a store records about itself, carried in every memlane commit.
//!
//! Each memlane commit of the Lance dataset carries two transaction properties:
//! [`STATE_KEY`] (the whole [`StoreState`] after the commit) and [`ENTRY_KEY`] (the
//! [`HistoryEntry`] describing the commit). History and data therefore land in one
//! atomic commit and can never disagree.

use serde::{Deserialize, Serialize};

use crate::error::{CoreError, Result};
use crate::report::StepReport;
use crate::space::Space;

/// Transaction property holding the [`StoreState`] JSON.
pub const STATE_KEY: &str = "memlane.state";
/// Transaction property holding the [`HistoryEntry`] JSON.
pub const ENTRY_KEY: &str = "memlane.entry";
/// Current state format.
pub const STATE_FORMAT: u32 = 1;

/// A deliberate, recorded edit of an applied migration (`memlane repair`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Repair {
    /// Why the edit was accepted.
    pub reason: String,
    /// When (RFC 3339).
    pub at: String,
    /// File name before the repair.
    pub previous_file: String,
    /// Content hash before the repair.
    pub previous_content_hash: String,
}

/// A migration that completed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppliedMigration {
    /// Migration id.
    pub id: u32,
    /// File name.
    pub file: String,
    /// Description.
    #[serde(default)]
    pub description: String,
    /// blake3 of the canonical content.
    pub content_hash: String,
    /// Chained checksum.
    pub checksum: String,
    /// When it completed (RFC 3339).
    pub applied_at: String,
    /// Recorded repairs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub repairs: Vec<Repair>,
}

/// A migration that started and has not completed: the resume point.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InFlight {
    /// Migration id.
    pub id: u32,
    /// File name.
    pub file: String,
    /// Description.
    #[serde(default)]
    pub description: String,
    /// blake3 of the canonical content.
    pub content_hash: String,
    /// Chained checksum.
    pub checksum: String,
    /// Steps committed so far.
    pub steps_done: usize,
    /// Total steps.
    pub steps_total: usize,
    /// When it started (RFC 3339).
    pub started_at: String,
    /// Lance version before its first commit.
    pub started_version: u64,
    /// Where the current step's online re-embed stands (resumes continue from it).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "lenient_checkpoint"
    )]
    pub checkpoint: Option<ReembedCheckpoint>,
    /// Reports of the committed steps.
    #[serde(default)]
    pub reports: Vec<StepReport>,
    /// The compatibility check of the current re-embed step (made once, before its
    /// backfill; a resumed run does not repeat it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compat: Option<crate::report::CompatCheck>,
}

/// An adapter stored in the store: maps query vectors of space `from` (the new model)
/// into space `to` (the old one), so the old space answers new-model queries.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AdapterRef {
    /// Space whose model embeds the queries.
    pub from: String,
    /// Space searched.
    pub to: String,
    /// Adapter kind (`procrustes`, `ridge`, `low_rank`).
    pub kind: String,
    /// File under the store's `_memlane/adapters/` (named by its digest).
    pub file: String,
    /// blake3 of the file (hex).
    pub digest: String,
    /// Retention measured when it was fitted: the share of the old model's hits that
    /// adapted new-model queries still find (`adapter.retention`, in `[0, 1]`; states
    /// written before this measure hold the older adapted / native neighbour-recall
    /// ratio, which could exceed 1).
    pub retention: f64,
    /// The migration that fitted it.
    pub migration: u32,
}

/// Everything memlane knows about a store beyond its data.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoreState {
    /// State format (a newer one than [`STATE_FORMAT`] is refused by every decoder, of a
    /// state alone or inside a snapshot or sample).
    #[serde(deserialize_with = "known_format")]
    pub format: u32,
    /// Embedding spaces (all, including inactive ones).
    pub spaces: Vec<Space>,
    /// The space searches use by default.
    #[serde(default)]
    pub active_space: Option<String>,
    /// Completed migrations, in order.
    #[serde(default)]
    pub applied: Vec<AppliedMigration>,
    /// The migration in progress, if any.
    #[serde(default)]
    pub in_flight: Option<InFlight>,
    /// Rows per Lance fragment for writes (also the commit unit of a re-embed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rows_per_fragment: Option<usize>,
    /// Query adapters between spaces (newest last).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub adapters: Vec<AdapterRef>,
    /// Replaced spaces to drop once their retention has passed (`contract_after`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pending_contracts: Vec<PendingContract>,
}

/// Read a state format, refusing one newer than this memlane knows: its fields may
/// mean something this version would get wrong.
fn known_format<'de, D: serde::Deserializer<'de>>(d: D) -> std::result::Result<u32, D::Error> {
    let format = u32::deserialize(d)?;
    if format > STATE_FORMAT {
        return Err(serde::de::Error::custom(format!(
            "state format {format} is newer than {STATE_FORMAT}"
        )));
    }
    Ok(format)
}

/// A replaced space kept for a retention period after a re-embed completed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingContract {
    /// The space to drop.
    pub space: String,
    /// When it may be dropped (RFC 3339).
    pub due: String,
    /// The retention as written (`7d`).
    pub retention: String,
    /// The migration whose re-embed replaced it.
    pub migration: u32,
}

impl Default for StoreState {
    fn default() -> Self {
        StoreState {
            format: STATE_FORMAT,
            spaces: Vec::new(),
            active_space: None,
            applied: Vec::new(),
            in_flight: None,
            rows_per_fragment: None,
            adapters: Vec::new(),
            pending_contracts: Vec::new(),
        }
    }
}

impl StoreState {
    /// Decode from the JSON of a transaction property.
    pub fn from_json(s: &str) -> Result<Self> {
        serde_json::from_str(s).map_err(|e| CoreError::State(e.to_string()))
    }

    /// Encode as JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    /// Look a space up by name.
    pub fn space(&self, name: &str) -> Option<&Space> {
        self.spaces.iter().find(|s| s.name == name)
    }

    /// The active space.
    pub fn active(&self) -> Option<&Space> {
        self.active_space.as_deref().and_then(|n| self.space(n))
    }

    /// Rows per Lance fragment (default 65 536).
    pub fn fragment_rows(&self) -> usize {
        self.rows_per_fragment.unwrap_or(65_536).max(1)
    }

    /// The checksum at the head of the chain (last applied or in-flight).
    pub fn head_checksum(&self) -> &str {
        if let Some(f) = &self.in_flight {
            return &f.checksum;
        }
        self.applied.last().map_or("", |a| a.checksum.as_str())
    }
}

/// What a commit did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// The store was created.
    Create,
    /// Records were added.
    Add,
    /// Records were inserted or updated by id.
    Upsert,
    /// Records matching a predicate were deleted.
    Delete,
    /// One step of a migration (the migration is still in flight).
    Step,
    /// The last step of a migration: it is now applied.
    Migration,
    /// A checkpoint of a gradual step.
    Checkpoint,
    /// A restore to an older version (a forward commit).
    Restore,
    /// An applied migration's edit was accepted.
    Repair,
    /// An existing Lance dataset's vector column was declared as a space.
    Adopt,
    /// An in-flight migration was aborted.
    Abort,
    /// An inactive space was dropped.
    Contract,
    /// The store was branched from another at a version (its first memlane commit).
    Branch,
    /// A rehearsal branch was cut to an evenly spread sample of its rows (such a branch
    /// cannot be promoted: its deletions are not the store's).
    Sample,
    /// A branch's commits were replayed onto the store (`branch promote`) and are now
    /// its own; the entry names the branch and the version it was promoted at.
    Promote,
    /// A vector index was built on a space outside a migration (its recall proven).
    Index,
    /// A space's embedder was remembered (or forgotten): add and search find it.
    Embedder,
}

/// Where a branch came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BranchOrigin {
    /// The store it was branched from.
    pub uri: String,
    /// The version it was branched at.
    pub version: u64,
}

/// The record of one memlane commit.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HistoryEntry {
    /// What happened.
    pub action: Action,
    /// When (RFC 3339).
    pub at: String,
    /// memlane version that wrote it.
    pub tool_version: String,
    /// Migration id, for step/migration/repair.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub migration: Option<u32>,
    /// Migration file name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
    /// Chained checksum of the migration.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checksum: Option<String>,
    /// Step report, for steps.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub report: Option<StepReport>,
    /// Rows before/after for adds and restores.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rows: Option<(u64, u64)>,
    /// Reason, for restore/repair.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Source version, for restore.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restored_from: Option<u64>,
    /// For a branch: the store and version it was branched from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub branched_from: Option<BranchOrigin>,
    /// On a commit replayed by `branch promote` (and on its closing `Promote` entry):
    /// the branch and its version this commit was first made as.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub promoted_from: Option<BranchOrigin>,
    /// Active space after the commit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub active_space: Option<String>,
}

impl HistoryEntry {
    /// A bare entry of the given action.
    pub fn new(action: Action, at: impl Into<String>) -> Self {
        HistoryEntry {
            action,
            at: at.into(),
            tool_version: crate::VERSION.to_owned(),
            migration: None,
            file: None,
            checksum: None,
            report: None,
            rows: None,
            reason: None,
            restored_from: None,
            branched_from: None,
            promoted_from: None,
            active_space: None,
        }
    }
}

impl std::fmt::Display for HistoryEntry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.fmt_action(f)?;
        match &self.promoted_from {
            Some(o) if self.action != Action::Promote => {
                write!(f, " [promoted from {} v{}]", o.uri, o.version)
            }
            _ => Ok(()),
        }
    }
}

impl HistoryEntry {
    /// What the commit did, in words.
    fn fmt_action(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let file = self.file.as_deref().unwrap_or("?");
        let reason = self.reason.as_deref().unwrap_or("");
        match self.action {
            Action::Create => write!(f, "create ({} rows)", self.rows.map_or(0, |r| r.1)),
            Action::Add => {
                let (a, b) = self.rows.unwrap_or_default();
                write!(f, "add {} records ({a} -> {b})", b.saturating_sub(a))
            }
            Action::Step | Action::Migration => {
                let kind = if self.action == Action::Migration {
                    "migration"
                } else {
                    "step"
                };
                match &self.report {
                    Some(r) => write!(
                        f,
                        "{kind} {file} step {}: {} (rows {} -> {}, {} ms)",
                        // saturating: the entry is decoded from a commit, which may be tampered
                        r.step.saturating_add(1),
                        r.description,
                        r.rows_before,
                        r.rows_after,
                        r.duration_ms
                    )?,
                    None => write!(f, "{kind} {file}")?,
                }
                if reason.is_empty() {
                    Ok(())
                } else {
                    write!(f, " — {reason}")
                }
            }
            Action::Checkpoint => write!(f, "checkpoint {file} — {reason}"),
            Action::Restore => write!(
                f,
                "restore of v{} — {reason}",
                self.restored_from.unwrap_or(0)
            ),
            Action::Upsert => f.write_str("upsert"),
            Action::Delete => write!(f, "{reason}"),
            Action::Abort => write!(f, "abort of {file} — {reason}"),
            Action::Contract => write!(f, "contract — {reason}"),
            Action::Adopt => write!(
                f,
                "adopt a vector column as space {}",
                self.active_space.as_deref().unwrap_or("?")
            ),
            Action::Repair => write!(f, "repair of {file} — {reason}"),
            Action::Branch => match &self.branched_from {
                Some(o) => write!(f, "branch of {} at v{} — {reason}", o.uri, o.version),
                None => write!(f, "branch — {reason}"),
            },
            Action::Sample => write!(f, "sample — {reason}"),
            Action::Index => write!(f, "index — {reason}"),
            Action::Embedder => write!(f, "embedder — {reason}"),
            Action::Promote => match &self.promoted_from {
                Some(o) => write!(f, "promote of {} at v{} — {reason}", o.uri, o.version),
                None => write!(f, "promote — {reason}"),
            },
        }
    }
}

/// Where an online re-embed stands: its phase, progress and rate, kept in the
/// in-flight record of the migration so a resumed apply continues from it and `status`
/// shows it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ReembedCheckpoint {
    /// `expand`, `backfill` (first pass) or `catch_up` (later passes).
    pub phase: String,
    /// Target space.
    pub space: String,
    /// Pass number (1 = backfill).
    pub pass: u32,
    /// Rows embedded by this step so far (across resumes).
    pub embedded: u64,
    /// Rows still to embed when last counted (the catch-up lag).
    pub remaining: u64,
    /// Live rows when last counted.
    pub total: u64,
    /// Embedding rate of the current run.
    pub rows_per_sec: f64,
    /// When the checkpoint was written.
    pub at: String,
}

impl ReembedCheckpoint {
    /// Share of live rows with a current vector.
    pub fn percent(&self) -> f64 {
        if self.total == 0 {
            return 100.0;
        }
        #[allow(clippy::cast_precision_loss)]
        let done = self.total.saturating_sub(self.remaining) as f64 / self.total as f64;
        done * 100.0
    }

    /// Estimated seconds left at the current rate.
    pub fn eta_secs(&self) -> Option<f64> {
        #[allow(clippy::cast_precision_loss)]
        (self.rows_per_sec > 0.0).then(|| self.remaining as f64 / self.rows_per_sec)
    }
}

/// A checkpoint that does not read as one (written by an older memlane, or edited) is
/// no checkpoint: the re-embed recounts its work instead of refusing the whole state.
fn lenient_checkpoint<'de, D>(d: D) -> std::result::Result<Option<ReembedCheckpoint>, D::Error>
where
    D: serde::Deserializer<'de>,
{
    let v = Option::<serde_json::Value>::deserialize(d)?;
    Ok(v.and_then(|v| serde_json::from_value(v).ok()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_reembed_checkpoint_is_typed_and_an_unreadable_one_is_none() {
        let flight = |cp: serde_json::Value| {
            serde_json::json!({
                "id": 1, "file": "0001_x.toml", "description": "", "content_hash": "h",
                "checksum": "c", "steps_done": 1, "steps_total": 2,
                "started_at": "2026-01-01T00:00:00Z", "started_version": 3,
                "checkpoint": cp,
            })
        };
        let ok: InFlight = serde_json::from_value(flight(serde_json::json!({
            "phase": "catch_up", "space": "new", "pass": 2, "embedded": 40,
            "remaining": 10, "total": 50, "rows_per_sec": 5.0, "at": "now"
        })))
        .unwrap();
        let cp = ok.checkpoint.unwrap();
        assert_eq!(
            (cp.phase.as_str(), cp.pass, cp.remaining),
            ("catch_up", 2, 10)
        );
        assert!((cp.percent() - 80.0).abs() < 1e-9 && cp.eta_secs() == Some(2.0));
        // a checkpoint edited into something else: the re-embed recounts, the state reads
        let odd: InFlight = serde_json::from_value(flight(serde_json::json!("garbage"))).unwrap();
        assert!(odd.checkpoint.is_none());
        // written by an older memlane (other keys): read with defaults
        let old: InFlight = serde_json::from_value(flight(
            serde_json::json!({"done_fragments": [1], "rows": 9}),
        ))
        .unwrap();
        assert_eq!(old.checkpoint.unwrap().space, "");
    }

    #[test]
    fn a_newer_format_is_refused_alone_and_inside_a_snapshot() {
        let st = StoreState::default();
        assert_eq!(StoreState::from_json(&st.to_json()), Ok(st));
        let newer = r#"{"format":2,"spaces":[]}"#;
        let e = StoreState::from_json(newer).unwrap_err().to_string();
        assert!(e.contains("state format 2 is newer than 1"), "{e}");
        // the wasm page and `memlane review` decode a snapshot, state included
        // (found by the `state` fuzz target: a snapshot carried a state this version
        // cannot write back)
        let snap = format!(r#"{{"version":0,"rows":0,"fields":[],"state":{newer}}}"#);
        let e = serde_json::from_str::<crate::Snapshot>(&snap).unwrap_err();
        assert!(e.to_string().contains("newer than 1"), "{e}");
    }

    #[test]
    fn a_tampered_step_number_is_shown_not_overflowed() {
        // found while fuzzing the history decoder (by reading; the input is in
        // fuzz/regressions/state): `step + 1` of a decoded report overflowed
        let mut h = HistoryEntry::new(Action::Step, "2026-01-01T00:00:00Z");
        h.report = Some(StepReport {
            migration: 1,
            step: usize::MAX,
            op: "normalize".into(),
            description: "normalise".into(),
            rows_before: 0,
            rows_after: 0,
            rows_deleted: 0,
            rows_written: 0,
            duration_ms: 0,
            invariants: vec![],
            version: None,
            compat: None,
            backfill: None,
        });
        assert!(
            h.to_string().contains(&format!("step {}", usize::MAX)),
            "{h}"
        );
        let r = h.report.expect("report");
        assert!(
            r.to_string().contains(&format!("step {}", usize::MAX)),
            "{r}"
        );
    }
}
