//! What a plan holds: the migrations the next apply runs, each step's effect on the
//! data, the findings of lint, and the schema and spaces afterwards.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::finding::{Finding, Level};
use crate::chain::short;
use crate::error::{CoreError, Result};
use crate::schema::FieldDef;
use crate::space::Space;

/// What a step does to the data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Effect {
    /// Schema or state only; no row is rewritten.
    Metadata,
    /// Writes one column for the rows it touches.
    WritesColumn {
        /// Column written.
        column: String,
    },
    /// Calls an embedder for every row.
    Embeds {
        /// Embedder the host must supply.
        embedder: String,
        /// Column written.
        column: String,
    },
    /// Deletes rows.
    DeletesRows,
}

/// One step of a planned migration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlannedStep {
    /// 0-based index.
    pub index: usize,
    /// Line in the file.
    pub line: usize,
    /// Op name.
    pub op: String,
    /// Human description.
    pub description: String,
    /// What it does to the data.
    pub effect: Effect,
    /// Already committed by an interrupted apply.
    pub done: bool,
}

/// A migration the next apply will run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlannedMigration {
    /// Id.
    pub id: u32,
    /// File name.
    pub file: String,
    /// Description.
    pub description: String,
    /// Chained checksum.
    pub checksum: String,
    /// Whether it resumes an interrupted apply.
    pub resumes: bool,
    /// Steps.
    pub steps: Vec<PlannedStep>,
    /// Invariant labels checked after each step.
    pub invariants: Vec<String>,
}

/// The plan of an apply.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    /// Store version planned against.
    pub version: u64,
    /// Rows in the store.
    pub rows: u64,
    /// Applied migrations.
    pub applied: usize,
    /// Migrations to run.
    pub migrations: Vec<PlannedMigration>,
    /// Lint findings.
    pub findings: Vec<Finding>,
    /// Embedders the host must supply.
    pub embedders: Vec<String>,
    /// Active space now.
    pub active_space_before: Option<String>,
    /// Active space after the plan.
    pub active_space_after: Option<String>,
    /// Spaces after the plan.
    pub spaces_after: Vec<Space>,
    /// Fields after the plan.
    pub fields_after: Vec<FieldDef>,
}

impl Plan {
    /// Error findings.
    pub fn errors(&self) -> impl Iterator<Item = &Finding> {
        self.findings.iter().filter(|f| f.level == Level::Error)
    }

    /// `Err(CoreError::Lint)` when lint found errors.
    pub fn ensure_clean(&self) -> Result<()> {
        let errs: Vec<String> = self.errors().map(ToString::to_string).collect();
        if errs.is_empty() {
            Ok(())
        } else {
            Err(CoreError::Lint {
                count: errs.len(),
                details: errs.join("\n"),
            })
        }
    }

    /// Whether there is nothing to do.
    pub fn is_empty(&self) -> bool {
        self.migrations.is_empty()
    }
}

impl fmt::Display for Plan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "store version {}, {} rows, {} migration(s) applied, active space: {}",
            self.version,
            self.rows,
            self.applied,
            self.active_space_before.as_deref().unwrap_or("none")
        )?;
        if self.migrations.is_empty() {
            writeln!(f, "nothing to apply: up to date")?;
        }
        for m in &self.migrations {
            writeln!(
                f,
                "{} [{}]{} — {}",
                m.file,
                short(&m.checksum),
                if m.resumes { " (resumes)" } else { "" },
                m.description
            )?;
            for s in &m.steps {
                let effect = match &s.effect {
                    Effect::Metadata => "metadata only".to_owned(),
                    Effect::WritesColumn { column } => format!("writes `{column}`"),
                    Effect::Embeds { embedder, column } => {
                        format!("embeds with `{embedder}` into `{column}`")
                    }
                    Effect::DeletesRows => "deletes rows".to_owned(),
                };
                writeln!(
                    f,
                    "  {}{}. {}: {} ({effect})",
                    if s.done { "done " } else { "" },
                    s.index + 1,
                    s.op,
                    s.description
                )?;
            }
            if !m.invariants.is_empty() {
                writeln!(
                    f,
                    "  invariants after each step: {}",
                    m.invariants.join(", ")
                )?;
            }
        }
        if !self.embedders.is_empty() {
            writeln!(f, "embedders needed: {}", self.embedders.join(", "))?;
        }
        if self.active_space_after != self.active_space_before {
            writeln!(
                f,
                "active space after: {}",
                self.active_space_after.as_deref().unwrap_or("none")
            )?;
        }
        for finding in &self.findings {
            writeln!(f, "{finding}")?;
        }
        let errors = self.errors().count();
        write!(
            f,
            "lint: {errors} error(s), {} warning(s)",
            self.findings.len() - errors
        )
    }
}
