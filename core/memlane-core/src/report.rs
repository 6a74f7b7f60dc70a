//! Reports of steps, migrations and invariant checks (serde, with human rendering).

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::migration::{CheckKind, Severity};

/// The outcome of one invariant check.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InvariantResult {
    /// Name shown in reports.
    pub name: String,
    /// Check kind.
    pub check: CheckKind,
    /// Severity.
    pub severity: Severity,
    /// Whether it holds (`mostly` taken into account).
    pub passed: bool,
    /// Rows looked at.
    pub total: u64,
    /// Rows that failed.
    pub failed: u64,
    /// Required pass fraction.
    pub mostly: f64,
    /// Up to [`SAMPLE_IDS`] ids of failing rows.
    #[serde(default)]
    pub sample_ids: Vec<String>,
    /// One-line explanation.
    pub message: String,
}

/// How many failing ids a check keeps.
pub const SAMPLE_IDS: usize = 10;

impl InvariantResult {
    /// Build a result from counts: passes when the passing share reaches `mostly`.
    #[allow(clippy::cast_precision_loss, clippy::too_many_arguments)]
    pub fn from_counts(
        name: impl Into<String>,
        check: CheckKind,
        severity: Severity,
        mostly: f64,
        total: u64,
        failed: u64,
        sample_ids: Vec<String>,
        message: impl Into<String>,
    ) -> Self {
        // a failure count above the rows looked at (a check that counts several
        // failures per row) means nothing passed
        let share = if total == 0 {
            if failed == 0 { 1.0 } else { 0.0 }
        } else {
            total.saturating_sub(failed) as f64 / total as f64
        };
        InvariantResult {
            name: name.into(),
            check,
            severity,
            passed: failed == 0 || share >= mostly,
            total,
            failed,
            mostly,
            sample_ids,
            message: message.into(),
        }
    }

    /// Whether this result blocks the step.
    pub fn blocks(&self) -> bool {
        !self.passed && self.severity == Severity::Fail
    }
}

impl fmt::Display for InvariantResult {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mark = match (self.passed, self.severity) {
            (true, _) => "ok  ",
            (false, Severity::Warn) => "WARN",
            (false, Severity::Fail) => "FAIL",
        };
        write!(f, "{mark} {}: {}", self.name, self.message)?;
        if !self.sample_ids.is_empty() {
            write!(f, " (e.g. {})", self.sample_ids.join(", "))?;
        }
        Ok(())
    }
}

/// The report of one committed (or dry-run) step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepReport {
    /// Migration id.
    pub migration: u32,
    /// 0-based step index.
    pub step: usize,
    /// Op name.
    pub op: String,
    /// Human description.
    pub description: String,
    /// Rows before the step.
    pub rows_before: u64,
    /// Rows after the step.
    pub rows_after: u64,
    /// Rows deleted.
    pub rows_deleted: u64,
    /// Rows whose values the step wrote.
    pub rows_written: u64,
    /// Wall time in milliseconds.
    pub duration_ms: u64,
    /// Invariant results.
    pub invariants: Vec<InvariantResult>,
    /// Lance version the step committed (none in a dry run).
    #[serde(default)]
    pub version: Option<u64>,
    /// For a re-embed: how the new space compares to the one it replaces, and the gates.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compat: Option<CompatCheck>,
    /// For a re-embed: how its backfill ran in this apply (commits, conflicts with
    /// writers, retried fragments, and each worker's share when workers embedded).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backfill: Option<BackfillStats>,
}

/// How the backfill of a re-embed ran in one apply.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct BackfillStats {
    /// Backfill commits (groups of fragments, each one Lance `DataReplacement`).
    pub commits: u64,
    /// Commits another writer preempted, redone on the new head.
    pub conflicts: u64,
    /// Fragments left out because a writer rewrote them meanwhile (an upsert's rewrite,
    /// a compaction): their results dropped, or their tasks not run. The next pass
    /// looks at their rows again.
    pub dropped: u64,
    /// Fragment tasks run again after a worker failed or died.
    pub retries: u64,
    /// Fragment results a killed run had staged, reused instead of embedded again.
    pub reused: u64,
    /// Rows whose vector the compatibility check had already computed with the new
    /// model (its sample), written without calling the model again.
    #[serde(default)]
    pub from_sample: u64,
    /// Per worker, when fragments were embedded by workers (empty in one process).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub workers: Vec<WorkerStats>,
    /// What the embedder was asked for during the backfill (requests, retries, model
    /// process restarts, tokens), when it counts them (HTTP and model-process embedders).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub embedder: Option<EmbedderCalls>,
}

/// What an embedder was asked for: its calls to a model server or process.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EmbedderCalls {
    /// Requests sent (HTTP requests, or lines sent to a model process), retries included.
    pub requests: u64,
    /// Requests sent again after a retryable failure (429, 5xx, a dropped connection,
    /// a timeout).
    pub retries: u64,
    /// Model processes started again after a crash or a hang.
    pub restarts: u64,
    /// Texts embedded (answered, not counting retries).
    pub texts: u64,
    /// Tokens the API reported it used (`usage.total_tokens`); none when it reports none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tokens: Option<u64>,
}

impl EmbedderCalls {
    /// Two counts added up (tokens when either side reports them).
    pub fn plus(&self, other: &EmbedderCalls) -> EmbedderCalls {
        EmbedderCalls {
            requests: self.requests + other.requests,
            retries: self.retries + other.retries,
            restarts: self.restarts + other.restarts,
            texts: self.texts + other.texts,
            tokens: match (self.tokens, other.tokens) {
                (None, None) => None,
                (a, b) => Some(a.unwrap_or(0) + b.unwrap_or(0)),
            },
        }
    }

    /// What was asked between `earlier` and `self` (two readings of one embedder).
    pub fn since(&self, earlier: &EmbedderCalls) -> EmbedderCalls {
        EmbedderCalls {
            requests: self.requests.saturating_sub(earlier.requests),
            retries: self.retries.saturating_sub(earlier.retries),
            restarts: self.restarts.saturating_sub(earlier.restarts),
            texts: self.texts.saturating_sub(earlier.texts),
            tokens: match (self.tokens, earlier.tokens) {
                (Some(a), b) => Some(a.saturating_sub(b.unwrap_or(0))),
                (None, _) => None,
            },
        }
    }
}

impl fmt::Display for EmbedderCalls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "embedder: {} request(s), {} retried, {} restart(s), {} text(s)",
            self.requests, self.retries, self.restarts, self.texts
        )?;
        if let Some(t) = self.tokens {
            write!(f, ", {t} token(s)")?;
        }
        Ok(())
    }
}

/// One worker's share of a distributed backfill.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct WorkerStats {
    /// The worker's name (as its executor reports it).
    pub worker: String,
    /// Fragments it embedded.
    pub fragments: u64,
    /// Rows it embedded.
    pub rows: u64,
    /// Seconds it spent on them (reading, embedding, writing).
    pub secs: f64,
}

impl WorkerStats {
    /// Rows per second of its own time.
    #[allow(clippy::cast_precision_loss)]
    pub fn rows_per_sec(&self) -> f64 {
        if self.secs > 0.0 {
            self.rows as f64 / self.secs
        } else {
            0.0
        }
    }
}

impl fmt::Display for BackfillStats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "backfill: {} commit(s), {} preempted by writers, {} fragment result(s) dropped, {} fragment task(s) retried, {} reused",
            self.commits, self.conflicts, self.dropped, self.retries, self.reused
        )?;
        if self.from_sample > 0 {
            write!(
                f,
                ", {} row(s) written from the compatibility sample (not embedded again)",
                self.from_sample
            )?;
        }
        for w in &self.workers {
            write!(
                f,
                "\n  worker {}: {} fragment(s), {} rows, {:.0} rows/s",
                w.worker,
                w.fragments,
                w.rows,
                w.rows_per_sec()
            )?;
        }
        if let Some(e) = &self.embedder {
            write!(f, "\n  {e}")?;
        }
        Ok(())
    }
}

/// Who approved a migration whose gates asked for review, when and why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Approval {
    /// The reason given (`--approve "reason"`).
    pub reason: String,
    /// Who approved (`MEMLANE_APPROVER`, else the git author `Name <email>`, else the CI
    /// actor, else user@host).
    pub by: String,
    /// When (RFC 3339).
    pub at: String,
}

/// The compatibility check of a re-embed, made on a sample before its backfill: the
/// metrics, the declared mode, every gate with its verdict, and the adapter kept.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CompatCheck {
    /// The space being replaced.
    pub from: String,
    /// The new space.
    pub to: String,
    /// Sampled rows (embedded with the new model, paired with their old vectors).
    pub sample: usize,
    /// Neighbours per row.
    pub k: usize,
    /// Every reported metric by name (`overlap@10`, `recall@10.baseline`, ...).
    pub metrics: std::collections::BTreeMap<String, f64>,
    /// The mode the re-embed declares, if any.
    #[serde(default)]
    pub mode: Option<crate::compat::CompatMode>,
    /// Why the declared mode does not hold (`None`: it holds, or none was declared).
    #[serde(default)]
    pub mode_failure: Option<String>,
    /// The mode the sample supports.
    pub suggested_mode: crate::compat::CompatMode,
    /// Every gate with its value, thresholds and verdict.
    pub gates: Vec<crate::compat::GateResult>,
    /// The worst verdict (a failed mode blocks).
    pub verdict: crate::compat::Verdict,
    /// What the adapter fit found, in one sentence.
    pub adapter_summary: String,
    /// The adapter stored for new-model queries against the old space, if one qualified.
    #[serde(default)]
    pub adapter: Option<crate::state::AdapterRef>,
    /// The approval of a `review` verdict.
    #[serde(default)]
    pub approval: Option<Approval>,
}

impl fmt::Display for CompatCheck {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "compatibility `{}` -> `{}` on {} sampled rows (k = {}): {}",
            self.from,
            self.to,
            self.sample,
            self.k,
            self.verdict.as_str().to_uppercase()
        )?;
        let k = self.k;
        for (name, base) in [
            (format!("overlap@{k}"), format!("overlap@{k}.baseline")),
            (format!("recall@{k}"), format!("recall@{k}.baseline")),
        ] {
            if let Some(v) = self.metrics.get(&name) {
                let b = self.metrics.get(&base).copied().unwrap_or(f64::NAN);
                writeln!(
                    f,
                    "  {name:<28} {v:.4}   (shuffled-pairing baseline {b:.4})"
                )?;
            }
        }
        let retrieval = format!("adapter.retrieval_recall@{k}");
        for name in [
            "cka",
            "procrustes.mean_cosine",
            "procrustes.residual",
            "identical.mean_cosine",
            "adapter.retention",
            retrieval.as_str(),
        ] {
            if let Some(v) = self.metrics.get(name) {
                writeln!(f, "  {name:<28} {v:.4}")?;
            }
        }
        writeln!(f, "  adapter: {}", self.adapter_summary)?;
        match (&self.mode, &self.mode_failure) {
            (Some(m), None) => writeln!(f, "  mode `{}`: holds", m.as_str())?,
            (Some(m), Some(why)) => writeln!(f, "  mode `{}`: BLOCK, {why}", m.as_str())?,
            (None, _) => writeln!(
                f,
                "  mode: not declared (the sample supports `{}`)",
                self.suggested_mode.as_str()
            )?,
        }
        for g in &self.gates {
            writeln!(
                f,
                "  gate {:<23} {}  {}  {}",
                g.metric,
                g.value
                    .map_or_else(|| "  none".to_owned(), |v| format!("{v:.4}")),
                g.verdict.as_str().to_uppercase(),
                g.message
            )?;
        }
        if let Some(a) = &self.approval {
            writeln!(f, "  approved by {} at {}: {}", a.by, a.at, a.reason)?;
        }
        Ok(())
    }
}

impl StepReport {
    /// Whether any invariant blocks.
    pub fn blocked(&self) -> bool {
        self.invariants.iter().any(InvariantResult::blocks)
    }
}

impl fmt::Display for StepReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "  step {} {}: rows {} -> {}",
            // saturating: a report decoded from a tampered state may say anything
            self.step.saturating_add(1),
            self.description,
            self.rows_before,
            self.rows_after
        )?;
        if self.rows_deleted > 0 {
            write!(f, ", {} deleted", self.rows_deleted)?;
        }
        if self.rows_written > 0 {
            write!(f, ", {} written", self.rows_written)?;
        }
        write!(f, " in {} ms", self.duration_ms)?;
        if let Some(v) = self.version {
            write!(f, " (version {v})")?;
        }
        for i in &self.invariants {
            write!(f, "\n    {i}")?;
        }
        if let Some(c) = &self.compat {
            for l in c.to_string().lines() {
                write!(f, "\n    {l}")?;
            }
        }
        if let Some(b) = self
            .backfill
            .as_ref()
            .filter(|b| b.commits > 0 || b.embedder.is_some())
        {
            for l in b.to_string().lines() {
                write!(f, "\n    {l}")?;
            }
        }
        Ok(())
    }
}

/// How a migration ended in an apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MigrationOutcome {
    /// All steps committed.
    Applied,
    /// Dry run: nothing committed.
    DryRun,
    /// A step was blocked by an invariant; earlier steps stay committed and the
    /// migration resumes at the blocked step.
    Blocked,
}

/// The report of one migration in an apply.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MigrationReport {
    /// Migration id.
    pub id: u32,
    /// File name.
    pub file: String,
    /// Description.
    pub description: String,
    /// Chained checksum.
    pub checksum: String,
    /// Outcome.
    pub outcome: MigrationOutcome,
    /// Whether it resumed an earlier, interrupted apply.
    pub resumed: bool,
    /// Step reports (only the steps run in this apply).
    pub steps: Vec<StepReport>,
}

/// The report of `apply`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct ApplyReport {
    /// Lance version before.
    pub version_before: u64,
    /// Lance version after.
    pub version_after: u64,
    /// Whether this was a dry run.
    pub dry_run: bool,
    /// Migrations run.
    pub migrations: Vec<MigrationReport>,
    /// Wall time in milliseconds.
    pub duration_ms: u64,
    /// How much context the apply lost (absent in a dry run or when nothing changed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context: Option<ContextLoss>,
}

/// "How much context did this deployment lose?": records lost, records whose content
/// changed, and for the retrieval space the share of each sampled record's nearest
/// neighbours that are still its neighbours after the apply (lost records keep none).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct ContextLoss {
    /// Version before the apply.
    pub version_before: u64,
    /// Version after it.
    pub version_after: u64,
    /// Live records before.
    pub records_before: u64,
    /// Records of before that are gone.
    pub records_lost: u64,
    /// Surviving records whose content changed.
    pub content_changed: u64,
    /// Active space before and after.
    pub space_before: Option<String>,
    /// Active space after.
    pub space_after: Option<String>,
    /// Records sampled for the neighbourhoods.
    pub sample: usize,
    /// Neighbours per record.
    pub k: usize,
    /// Mean share of a sampled record's k nearest neighbours (within the sample) kept.
    pub neighbours_kept: Option<f64>,
    /// The one number: share of context kept (neighbours kept, with lost records
    /// counting as none; 1 when there is no space to compare).
    pub context_kept: f64,
}

impl fmt::Display for ContextLoss {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "context kept {:.1}%: {} of {} records lost, {} with changed content",
            self.context_kept * 100.0,
            self.records_lost,
            self.records_before,
            self.content_changed
        )?;
        if let Some(n) = self.neighbours_kept {
            write!(
                f,
                "; {:.1}% of the {} nearest neighbours of {} sampled records kept ({} -> {})",
                n * 100.0,
                self.k,
                self.sample,
                self.space_before.as_deref().unwrap_or("-"),
                self.space_after.as_deref().unwrap_or("-")
            )?;
        }
        Ok(())
    }
}

impl ApplyReport {
    /// Whether an invariant blocked a step.
    pub fn blocked(&self) -> bool {
        self.migrations
            .iter()
            .any(|m| m.outcome == MigrationOutcome::Blocked)
    }
}

impl fmt::Display for ApplyReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.migrations.is_empty() {
            return write!(
                f,
                "nothing to apply: the store is at version {} and up to date",
                self.version_after
            );
        }
        for m in &self.migrations {
            let outcome = match m.outcome {
                MigrationOutcome::Applied => "applied",
                MigrationOutcome::DryRun => "dry run, nothing committed",
                MigrationOutcome::Blocked => "BLOCKED by an invariant, step not committed",
            };
            writeln!(
                f,
                "{} {}{} — {}",
                m.file,
                outcome,
                if m.resumed { " (resumed)" } else { "" },
                m.description
            )?;
            for s in &m.steps {
                writeln!(f, "{s}")?;
            }
        }
        write!(
            f,
            "version {} -> {} in {} ms{}",
            self.version_before,
            self.version_after,
            self.duration_ms,
            if self.dry_run { " (dry run)" } else { "" }
        )?;
        if let Some(c) = &self.context {
            write!(f, "\n{c}")?;
        }
        Ok(())
    }
}
