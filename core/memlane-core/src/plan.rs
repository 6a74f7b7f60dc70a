//! Plan and lint: simulate pending migrations against a store snapshot.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::chain::{reconcile, short};
use crate::error::{CoreError, Result};
use crate::migration::{CheckKind, Migration, Step};
use crate::schema::{CONTENT, FieldDef, FieldType, ID, Value};
use crate::space::{Space, check_name};
use crate::state::StoreState;

/// What the planner knows of a store: its version, size, columns and recorded state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct Snapshot {
    /// Lance version.
    pub version: u64,
    /// Live rows.
    pub rows: u64,
    /// Columns, vector columns included.
    pub fields: Vec<FieldDef>,
    /// Recorded state.
    pub state: StoreState,
}

impl Snapshot {
    /// The snapshot of a store about to be created by a migrations folder alone:
    /// `id`, `content` and the agent-memory fields, no spaces.
    pub fn fresh() -> Self {
        let mut fields = vec![
            FieldDef {
                name: ID.into(),
                ty: FieldType::String,
                nullable: false,
            },
            FieldDef {
                name: CONTENT.into(),
                ty: FieldType::String,
                nullable: true,
            },
        ];
        fields.extend(crate::schema::memory_fields());
        Snapshot {
            version: 0,
            rows: 0,
            fields,
            state: StoreState::default(),
        }
    }
}

/// Severity of a lint finding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    /// Blocks apply.
    Error,
    /// Reported only.
    Warning,
}

/// One lint finding, with where and how to fix it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Finding {
    /// Error or warning.
    pub level: Level,
    /// Stable code, e.g. `lossy-cast`.
    pub code: String,
    /// File name.
    pub file: String,
    /// 1-based line.
    pub line: usize,
    /// What is wrong.
    pub message: String,
    /// How to fix it.
    pub hint: String,
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let lvl = match self.level {
            Level::Error => "error",
            Level::Warning => "warning",
        };
        write!(
            f,
            "{}:{}: {lvl}[{}]: {}\n  hint: {}",
            self.file, self.line, self.code, self.message, self.hint
        )
    }
}

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
                    "  {}{}. {} ({effect})",
                    if s.done { "done " } else { "" },
                    s.index + 1,
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

/// The schema being simulated.
struct Sim {
    fields: Vec<FieldDef>,
    spaces: Vec<Space>,
    active: Option<String>,
    findings: Vec<Finding>,
    file: String,
    line: usize,
}

impl Sim {
    fn field(&self, name: &str) -> Option<&FieldDef> {
        self.fields.iter().find(|f| f.name == name)
    }
    fn space(&self, name: &str) -> Option<&Space> {
        self.spaces.iter().find(|s| s.name == name)
    }
    fn space_of_column(&self, col: &str) -> Option<&Space> {
        self.spaces.iter().find(|s| s.column == col)
    }
    fn push(&mut self, level: Level, code: &str, message: String, hint: impl Into<String>) {
        self.findings.push(Finding {
            level,
            code: code.into(),
            file: self.file.clone(),
            line: self.line,
            message,
            hint: hint.into(),
        });
    }
    fn err(&mut self, code: &str, message: String, hint: impl Into<String>) {
        self.push(Level::Error, code, message, hint);
    }
    fn known_fields(&self) -> String {
        self.fields
            .iter()
            .map(|f| f.name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    }
    fn need_field(&mut self, name: &str) -> Option<FieldDef> {
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
    fn need_space(&mut self, name: &str) -> Option<Space> {
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
    fn new_name(&mut self, name: &str) -> bool {
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
    fn protected(&mut self, name: &str, what: &str) -> bool {
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

    fn step(&mut self, step: &Step) -> Effect {
        match step {
            Step::AddField {
                field,
                ty,
                default,
                nullable,
            } => {
                let Some(t) = FieldType::parse(ty) else {
                    self.err(
                        "unknown-type",
                        format!("unknown type `{ty}`"),
                        format!("types are: {}", FieldType::NAMES),
                    );
                    return Effect::Metadata;
                };
                if !self.new_name(field) {
                    return Effect::Metadata;
                }
                if let Some(d) = default
                    && let Err(e) = d.coerce(field, &t)
                {
                    self.err("bad-default", e.to_string(), format!("give a {t} default"));
                }
                if !nullable && default.is_none() {
                    self.err(
                        "non-null-without-default",
                        format!("field `{field}` is non-null but has no default for existing rows"),
                        "add a `default`, or make it nullable",
                    );
                }
                self.fields.push(FieldDef {
                    name: field.clone(),
                    ty: t,
                    nullable: *nullable,
                });
                if default.as_ref().is_some_and(|d| *d != Value::Null) {
                    Effect::WritesColumn {
                        column: field.clone(),
                    }
                } else {
                    Effect::Metadata
                }
            }
            Step::RenameField { from, to } => {
                if self.protected(from, "rename")
                    || self.need_field(from).is_none()
                    || !self.new_name(to)
                {
                    return Effect::Metadata;
                }
                if from == CONTENT {
                    self.push(Level::Warning, "rename-content", "renaming `content`: re-embedding reads `content` unless a step names another `source`".into(), "set `source` on later reembed steps");
                }
                if let Some(f) = self.fields.iter_mut().find(|f| f.name == *from) {
                    f.name.clone_from(to);
                }
                Effect::Metadata
            }
            Step::DropField { field } => {
                if self.protected(field, "drop") || self.need_field(field).is_none() {
                    return Effect::Metadata;
                }
                if field == CONTENT {
                    self.push(
                        Level::Warning,
                        "drop-content",
                        "dropping `content` makes later re-embedding impossible".into(),
                        "keep `content` unless the store holds vectors only",
                    );
                }
                self.fields.retain(|f| f.name != *field);
                Effect::Metadata
            }
            Step::CastField { field, to } => {
                if self.protected(field, "cast") {
                    return Effect::Metadata;
                }
                let Some(f) = self.need_field(field) else {
                    return Effect::Metadata;
                };
                let Some(t) = FieldType::parse(to) else {
                    self.err(
                        "unknown-type",
                        format!("unknown type `{to}`"),
                        format!("types are: {}", FieldType::NAMES),
                    );
                    return Effect::Metadata;
                };
                if !f.ty.widens_to(&t) {
                    self.err(
                        "lossy-cast",
                        format!("casting `{field}` from {} to {t} can lose information", f.ty),
                        "add a new field of the target type and backfill it deliberately, or cast to a wider type",
                    );
                    return Effect::Metadata;
                }
                if let Some(f) = self.fields.iter_mut().find(|f| f.name == *field) {
                    f.ty = t;
                }
                Effect::WritesColumn {
                    column: field.clone(),
                }
            }
            Step::Backfill {
                field,
                value,
                copy_from,
                ..
            } => {
                if self.protected(field, "backfill") {
                    return Effect::Metadata;
                }
                let Some(f) = self.need_field(field) else {
                    return Effect::Metadata;
                };
                match (value, copy_from) {
                    (Some(v), None) => {
                        if let Err(e) = v.coerce(field, &f.ty) {
                            self.err("bad-value", e.to_string(), format!("give a {} value", f.ty));
                        }
                    }
                    (None, Some(src)) => {
                        if let Some(s) = self.need_field(src)
                            && !s.ty.widens_to(&f.ty)
                        {
                            self.err(
                                "lossy-copy",
                                format!(
                                    "copying `{src}` ({}) into `{field}` ({}) can lose information",
                                    s.ty, f.ty
                                ),
                                "copy from a field of the same or a narrower type",
                            );
                        }
                    }
                    _ => self.err(
                        "bad-backfill",
                        format!(
                            "backfill of `{field}` needs exactly one of `value` and `copy_from`"
                        ),
                        "set `value = ...` or `copy_from = \"field\"`",
                    ),
                }
                Effect::WritesColumn {
                    column: field.clone(),
                }
            }
            Step::AddSpace { space, model, .. } => {
                if self.space(space).is_some() {
                    self.err(
                        "space-exists",
                        format!("space `{space}` already exists"),
                        "pick another name",
                    );
                    return Effect::Metadata;
                }
                match step.new_space(&self.spaces).map(Space::validated) {
                    Some(Ok(s)) => {
                        if self.field(&s.column).is_some() {
                            self.err(
                                "field-exists",
                                format!("column `{}` for space `{space}` already exists", s.column),
                                "pick another space name",
                            );
                            return Effect::Metadata;
                        }
                        if model.is_empty() {
                            self.push(Level::Warning, "anonymous-model", format!("space `{space}` names no model"), "set `provider`, `model` and `revision` so a model swap can be detected");
                        }
                        self.fields.push(FieldDef {
                            name: s.column.clone(),
                            ty: FieldType::Vector(s.dimension),
                            nullable: true,
                        });
                        self.spaces.push(s);
                    }
                    Some(Err(e)) => {
                        self.err("bad-space", e.to_string(), "fix the space definition")
                    }
                    None => {}
                }
                Effect::Metadata
            }
            Step::Reembed {
                space,
                embedder,
                source,
                activate,
                batch_size,
                throttle,
                checkpoint_seconds,
                compare_to,
                mode,
                sample,
                k,
                query_prefix,
                passage_prefix,
                contract_after,
            } => {
                if let Some(Err(e)) = contract_after
                    .as_deref()
                    .map(crate::migration::parse_duration)
                {
                    self.err(
                        "bad-duration",
                        format!("`contract_after`: {e}"),
                        "write a retention such as \"7d\", or drop it to keep the old space until `memlane contract`",
                    );
                }
                if contract_after.is_some() && !*activate {
                    self.err(
                        "contract-inactive",
                        "`contract_after` drops the replaced space, but `activate = false` keeps it active".into(),
                        "drop `contract_after`, or activate the new space",
                    );
                }
                for (key, v) in [
                    ("throttle", throttle),
                    ("checkpoint_seconds", checkpoint_seconds),
                ] {
                    if v.is_some_and(|x| !(x.is_finite() && x > 0.0)) {
                        self.err(
                            "bad-number",
                            format!("`{key}` must be a positive number"),
                            "drop it to use the default",
                        );
                    }
                }
                if batch_size == &Some(0) {
                    self.err(
                        "bad-batch-size",
                        "batch_size must be at least 1".into(),
                        "drop it to use the default",
                    );
                }
                if let Some(src) = self.need_field(source)
                    && src.ty != FieldType::String
                {
                    self.err(
                        "source-not-text",
                        format!("source `{source}` is {}, not string", src.ty),
                        "re-embed from a text field",
                    );
                }
                if k == &Some(0) || sample.is_some_and(|n| n < 2) {
                    self.err(
                        "bad-sample",
                        "`k` must be at least 1 and `sample` at least 2".into(),
                        "drop them to use the defaults (k = 10, sample = 2000)",
                    );
                }
                let Some(s) = self.need_space(space) else {
                    return Effect::Metadata;
                };
                for (key, declared, has) in [
                    ("query_prefix", query_prefix, &s.query_prefix),
                    ("passage_prefix", passage_prefix, &s.passage_prefix),
                ] {
                    if let Some(p) = declared
                        && p != has
                    {
                        self.push(
                            Level::Error,
                            "prefix-mismatch",
                            format!(
                                "re-embed into `{space}` declares {key} {p:?} but the space has {has:?}: the stored vectors and the queries would be embedded differently"
                            ),
                            format!("set `{key} = {p:?}` on the space (add_space), or drop it from the re-embed"),
                        );
                    }
                }
                let old = compare_to.clone().or_else(|| self.active.clone());
                if let Some(o) = compare_to
                    && self.need_space(o).is_none()
                {
                    return Effect::Metadata;
                }
                if mode.is_some() && old.is_none() {
                    self.err(
                        "mode-without-old-space",
                        format!("re-embed into `{space}` declares a mode but there is no space to compare it to"),
                        "set `compare_to` to the space it replaces, or drop `mode`",
                    );
                }
                if old.as_deref() == Some(space.as_str()) {
                    self.err(
                        "compare-to-itself",
                        format!("re-embed into `{space}` compares the space to itself"),
                        "set `compare_to` to the space it replaces",
                    );
                }
                if *activate {
                    self.active = Some(s.name.clone());
                }
                Effect::Embeds {
                    embedder: embedder.clone(),
                    column: s.column,
                }
            }
            Step::Truncate {
                from,
                space,
                dimension,
                activate,
            } => {
                let Some(src) = self.need_space(from) else {
                    return Effect::Metadata;
                };
                if *dimension == 0 || *dimension >= src.dimension {
                    self.err(
                        "bad-dimension",
                        format!(
                            "cannot truncate `{from}` ({}d) to {dimension} dims",
                            src.dimension
                        ),
                        if src.dimension > 1 {
                            format!("pick a dimension between 1 and {}", src.dimension - 1)
                        } else {
                            "a 1-d space cannot be truncated".to_owned()
                        },
                    );
                    return Effect::Metadata;
                }
                if self.space(space).is_some() {
                    self.err(
                        "space-exists",
                        format!("space `{space}` already exists"),
                        "pick another name",
                    );
                    return Effect::Metadata;
                }
                let Some(s) = step.new_space(&self.spaces) else {
                    return Effect::Metadata;
                };
                if let Err(e) = check_name(space) {
                    self.err("bad-name", e, "rename the space");
                    return Effect::Metadata;
                }
                if self.field(&s.column).is_some() {
                    self.err(
                        "field-exists",
                        format!("column `{}` already exists", s.column),
                        "pick another space name",
                    );
                    return Effect::Metadata;
                }
                self.push(Level::Warning, "matryoshka", format!("truncating `{from}` assumes its model was trained for Matryoshka truncation ({})", src.model), "check the model card; otherwise re-embed instead");
                self.fields.push(FieldDef {
                    name: s.column.clone(),
                    ty: FieldType::Vector(*dimension),
                    nullable: true,
                });
                let column = s.column.clone();
                if *activate {
                    self.active = Some(s.name.clone());
                }
                self.spaces.push(s);
                Effect::WritesColumn { column }
            }
            Step::Normalize { space } => {
                let Some(s) = self.need_space(space) else {
                    return Effect::Metadata;
                };
                if s.metric == crate::space::Metric::Dot {
                    self.push(
                        Level::Warning,
                        "normalize-dot",
                        format!("normalising dot-product space `{space}` changes its rankings"),
                        "make sure the model's dot scores are meant to be cosine",
                    );
                }
                if let Some(sp) = self.spaces.iter_mut().find(|x| x.name == *space) {
                    sp.normalized = true;
                }
                Effect::WritesColumn { column: s.column }
            }
            Step::DeleteWhere { predicate } => {
                if predicate.trim().is_empty() {
                    self.err(
                        "empty-predicate",
                        "delete_where needs a predicate".into(),
                        "e.g. predicate = \"status = 'expired'\"",
                    );
                } else if matches!(
                    predicate.trim().to_ascii_lowercase().as_str(),
                    "true" | "1 = 1" | "1=1"
                ) {
                    self.err(
                        "delete-all",
                        format!("predicate `{predicate}` deletes every record"),
                        "narrow the predicate",
                    );
                }
                Effect::DeletesRows
            }
            Step::Dedupe { by, order_by } => {
                self.need_field(by);
                self.need_field(order_by);
                Effect::DeletesRows
            }
            Step::SetActiveSpace { space } => {
                if self.need_space(space).is_some() {
                    self.active = Some(space.clone());
                }
                Effect::Metadata
            }
        }
    }
}

/// Plan the pending migrations of `files` against `snap`: reconcile with the hash
/// chain (refused on an edited, renamed, removed or reordered applied migration),
/// then simulate every pending step and collect lint findings.
pub fn plan(snap: &Snapshot, files: &[Migration]) -> Result<Plan> {
    let rec = reconcile(&snap.state, files).map_err(CoreError::Chain)?;
    let mut sim = Sim {
        fields: snap.fields.clone(),
        spaces: snap.state.spaces.clone(),
        active: snap.state.active_space.clone(),
        findings: Vec::new(),
        file: String::new(),
        line: 0,
    };
    let mut todo: Vec<(&Migration, String, usize, bool)> = Vec::new();
    if let Some((m, done)) = rec.in_flight {
        let sum = snap
            .state
            .in_flight
            .as_ref()
            .map(|f| f.checksum.clone())
            .unwrap_or_default();
        todo.push((m, sum, done, true));
    }
    todo.extend(rec.pending.into_iter().map(|(m, s)| (m, s, 0, false)));
    let mut migrations = Vec::new();
    let mut embedders: Vec<String> = Vec::new();
    for (m, checksum, done, resumes) in todo {
        sim.file.clone_from(&m.file);
        let mut steps = Vec::new();
        for (i, s) in m.steps.iter().enumerate() {
            sim.line = s.line;
            // Steps already committed have already changed the snapshot's schema.
            let effect = if i < done {
                Effect::Metadata
            } else {
                sim.step(&s.step)
            };
            if let Effect::Embeds { embedder, .. } = &effect
                && !embedders.contains(embedder)
            {
                embedders.push(embedder.clone());
            }
            steps.push(PlannedStep {
                index: i,
                line: s.line,
                op: s.step.op().into(),
                description: s.step.describe(),
                effect,
                done: i < done,
            });
        }
        for inv in &m.invariants {
            sim.line = 1;
            match inv.check {
                CheckKind::Expression
                    if inv.expr.as_deref().is_none_or(|e| e.trim().is_empty()) =>
                {
                    sim.err(
                        "bad-invariant",
                        "an `expression` invariant needs `expr`".into(),
                        "e.g. expr = \"content IS NOT NULL\"",
                    );
                }
                CheckKind::VectorsValid => {
                    if let Some(s) = &inv.space {
                        sim.need_space(s);
                    }
                }
                CheckKind::RowCount if inv.min.is_none() && inv.max.is_none() => {
                    sim.err(
                        "bad-invariant",
                        "a `row_count` invariant needs `min` or `max`".into(),
                        "e.g. min = 1",
                    );
                }
                _ => {}
            }
            if !(0.0..=1.0).contains(&inv.mostly) {
                sim.err(
                    "bad-invariant",
                    format!("mostly = {} is not a fraction", inv.mostly),
                    "use a value between 0 and 1",
                );
            }
        }
        migrations.push(PlannedMigration {
            id: m.id,
            file: m.file.clone(),
            description: m.description.clone(),
            checksum,
            resumes,
            steps,
            invariants: m
                .invariants
                .iter()
                .map(crate::migration::InvariantSpec::label)
                .collect(),
        });
    }
    Ok(Plan {
        version: snap.version,
        rows: snap.rows,
        applied: snap.state.applied.len(),
        migrations,
        findings: sim.findings,
        embedders,
        active_space_before: snap.state.active_space.clone(),
        active_space_after: sim.active,
        spaces_after: sim.spaces,
        fields_after: sim.fields,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::migration::parse_migration;

    fn m(file: &str, body: &str) -> Migration {
        parse_migration(file, body).unwrap()
    }

    #[test]
    fn plans_and_lints() {
        let files = vec![
            m(
                "0001_space.toml",
                "[[steps]]\nop='add_space'\nspace='big'\nmodel='m'\ndimension=768\nnormalized=true\n",
            ),
            m(
                "0002_meta.toml",
                "[[steps]]\nop='add_field'\nfield='topic'\ntype='string'\ndefault='x'\n\n[[steps]]\nop='cast_field'\nfield='topic'\nto='int64'\n\n[[steps]]\nop='truncate'\nfrom='big'\nspace='small'\ndimension=256\n\n[[steps]]\nop='reembed'\nspace='nope'\nembedder='e'\n",
            ),
        ];
        let p = plan(&Snapshot::fresh(), &files).unwrap();
        assert_eq!(p.migrations.len(), 2);
        let codes: Vec<(&str, usize)> = p
            .findings
            .iter()
            .filter(|f| f.level == Level::Error)
            .map(|f| (f.code.as_str(), f.line))
            .collect();
        assert_eq!(codes, vec![("lossy-cast", 7), ("unknown-space", 18)], "{p}");
        assert_eq!(p.active_space_after.as_deref(), Some("small"));
        assert!(
            p.ensure_clean()
                .unwrap_err()
                .to_string()
                .contains("0002_meta.toml:7")
        );
        assert!(p.to_string().contains("truncate space `big` to 256"));
    }
}
