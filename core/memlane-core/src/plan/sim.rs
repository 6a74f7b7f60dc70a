//! The simulator behind [`super::plan`]: the schema, spaces and active space as the
//! pending steps leave them, with the findings of lint. [`Sim::step`] dispatches each
//! step kind to its own check (field ops in `fields.rs`, space ops in `spaces.rs`).

use super::Snapshot;
use super::finding::{Finding, Level};
use super::planned::{Effect, PlannedMigration, PlannedStep};
use crate::migration::{CheckKind, InvariantSpec, Migration, Step};
use crate::schema::{FieldDef, ID};
use crate::space::{Space, check_name};

/// The schema being simulated.
pub(super) struct Sim {
    /// Columns as the steps so far leave them.
    pub(super) fields: Vec<FieldDef>,
    /// Spaces as the steps so far leave them.
    pub(super) spaces: Vec<Space>,
    /// Active space as the steps so far leave it.
    pub(super) active: Option<String>,
    /// Lint findings so far.
    pub(super) findings: Vec<Finding>,
    /// File of the step being simulated.
    file: String,
    /// Line of the step being simulated.
    line: usize,
}

/// A migration the plan runs: fresh, or resumed after `done` committed steps.
pub(super) struct Pending<'a> {
    /// The migration.
    pub(super) migration: &'a Migration,
    /// Its chained checksum.
    pub(super) checksum: String,
    /// Steps already committed by an interrupted apply.
    pub(super) done: usize,
    /// Whether it resumes an interrupted apply.
    pub(super) resumes: bool,
}

impl Sim {
    /// A simulator starting from the schema, spaces and active space of `snap`.
    pub(super) fn new(snap: &Snapshot) -> Self {
        Sim {
            fields: snap.fields.clone(),
            spaces: snap.state.spaces.clone(),
            active: snap.state.active_space.clone(),
            findings: Vec::new(),
            file: String::new(),
            line: 0,
        }
    }

    /// Simulate every step of `p` not yet committed, then lint its invariants.
    pub(super) fn migration(&mut self, p: Pending<'_>) -> PlannedMigration {
        let m = p.migration;
        self.file.clone_from(&m.file);
        let mut steps = Vec::new();
        for (i, s) in m.steps.iter().enumerate() {
            self.line = s.line;
            // Steps already committed have already changed the snapshot's schema.
            let effect = if i < p.done {
                Effect::Metadata
            } else {
                self.step(&s.step)
            };
            steps.push(PlannedStep {
                index: i,
                line: s.line,
                op: s.step.op().into(),
                description: s.step.describe(),
                effect,
                done: i < p.done,
            });
        }
        for inv in &m.invariants {
            self.line = 1;
            self.invariant(inv);
        }
        PlannedMigration {
            id: m.id,
            file: m.file.clone(),
            description: m.description.clone(),
            checksum: p.checksum,
            resumes: p.resumes,
            steps,
            invariants: m.invariants.iter().map(InvariantSpec::label).collect(),
        }
    }

    /// Lint one declared invariant: the options its check needs, a known space, a
    /// fraction for `mostly`.
    fn invariant(&mut self, inv: &InvariantSpec) {
        match inv.check {
            CheckKind::Expression if inv.expr.as_deref().is_none_or(|e| e.trim().is_empty()) => {
                self.err(
                    "bad-invariant",
                    "an `expression` invariant needs `expr`".into(),
                    "e.g. expr = \"content IS NOT NULL\"",
                );
            }
            CheckKind::VectorsValid => {
                if let Some(s) = &inv.space {
                    self.need_space(s);
                }
            }
            CheckKind::RowCount if inv.min.is_none() && inv.max.is_none() => {
                self.err(
                    "bad-invariant",
                    "a `row_count` invariant needs `min` or `max`".into(),
                    "e.g. min = 1",
                );
            }
            _ => {}
        }
        if !(0.0..=1.0).contains(&inv.mostly) {
            self.err(
                "bad-invariant",
                format!("mostly = {} is not a fraction", inv.mostly),
                "use a value between 0 and 1",
            );
        }
    }

    /// Simulate one step: one check per step kind. Returns what it does to the data
    /// ([`Effect::Metadata`] when lint stopped it).
    pub(super) fn step(&mut self, step: &Step) -> Effect {
        match step {
            Step::AddField {
                field,
                ty,
                default,
                nullable,
            } => self.add_field(field, ty, default.as_ref(), *nullable),
            Step::RenameField { from, to } => self.rename_field(from, to),
            Step::DropField { field } => self.drop_field(field),
            Step::CastField { field, to } => self.cast_field(field, to),
            Step::Backfill {
                field,
                value,
                copy_from,
                ..
            } => self.backfill(field, value.as_ref(), copy_from.as_deref()),
            Step::AddSpace { space, model, .. } => self.add_space(step, space, model),
            Step::Reembed { .. } => self.reembed(step),
            Step::Truncate {
                from,
                space,
                dimension,
                activate,
            } => self.truncate(step, from, space, *dimension, *activate),
            Step::Normalize { space } => self.normalize(space),
            Step::DeleteWhere { predicate } => self.delete_where(predicate),
            Step::Dedupe { by, order_by } => self.dedupe(by, order_by),
            Step::SetActiveSpace { space } => self.set_active_space(space),
            Step::CreateIndex { space, index } => self.create_index(space, index),
            Step::OptimizeIndex { space } => self.optimize_index(space),
        }
    }

    /// The column named `name`.
    pub(super) fn field(&self, name: &str) -> Option<&FieldDef> {
        self.fields.iter().find(|f| f.name == name)
    }

    /// The space named `name`.
    pub(super) fn space(&self, name: &str) -> Option<&Space> {
        self.spaces.iter().find(|s| s.name == name)
    }

    /// The space whose vectors live in column `col`.
    fn space_of_column(&self, col: &str) -> Option<&Space> {
        self.spaces.iter().find(|s| s.column == col)
    }

    /// Record a finding at the current file and line.
    pub(super) fn push(
        &mut self,
        level: Level,
        code: &str,
        message: String,
        hint: impl Into<String>,
    ) {
        self.findings.push(Finding {
            level,
            code: code.into(),
            file: self.file.clone(),
            line: self.line,
            message,
            hint: hint.into(),
        });
    }

    /// Record an error finding at the current file and line.
    pub(super) fn err(&mut self, code: &str, message: String, hint: impl Into<String>) {
        self.push(Level::Error, code, message, hint);
    }

    /// The names of the current columns, comma-separated.
    fn known_fields(&self) -> String {
        self.fields
            .iter()
            .map(|f| f.name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// The column `name`, or an `unknown-field` error.
    pub(super) fn need_field(&mut self, name: &str) -> Option<FieldDef> {
        let f = self.field(name).cloned();
        if f.is_none() {
            let known = self.known_fields();
            self.err(
                "unknown-field",
                format!("field `{name}` does not exist"),
                format!("fields are: {known}"),
            );
        }
        f
    }

    /// The space `name`, or an `unknown-space` error.
    pub(super) fn need_space(&mut self, name: &str) -> Option<Space> {
        let s = self.space(name).cloned();
        if s.is_none() {
            let known: Vec<&str> = self.spaces.iter().map(|s| s.name.as_str()).collect();
            self.err(
                "unknown-space",
                format!("space `{name}` does not exist"),
                if known.is_empty() {
                    "declare it first with an `add_space` step".to_owned()
                } else {
                    format!(
                        "spaces are: {}; or declare it with `add_space`",
                        known.join(", ")
                    )
                },
            );
        }
        s
    }

    /// Whether `name` is a valid name no column has yet (else an error finding).
    pub(super) fn new_name(&mut self, name: &str) -> bool {
        if let Err(m) = check_name(name) {
            self.err("bad-name", m, "rename it");
            return false;
        }
        if self.field(name).is_some() {
            self.err(
                "field-exists",
                format!("field `{name}` already exists"),
                "pick another name or drop the old field first",
            );
            return false;
        }
        true
    }

    /// Whether `name` is `id` or a space's vector column, which field ops may not
    /// `what` (with an error finding).
    pub(super) fn protected(&mut self, name: &str, what: &str) -> bool {
        if name == ID {
            self.err(
                "reserved-field",
                format!("cannot {what} `id`: every record is identified by it"),
                "leave `id` as is",
            );
            return true;
        }
        if let Some(s) = self.space_of_column(name) {
            let s = s.name.clone();
            self.err(
                "space-column",
                format!(
                    "`{name}` holds the vectors of space `{s}`; it cannot be edited as a field"
                ),
                "use the vector ops (reembed, truncate, normalize)",
            );
            return true;
        }
        false
    }
}
