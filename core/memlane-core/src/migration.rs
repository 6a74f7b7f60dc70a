//! Migration files: `NNNN_slug.toml`, parsed into ordered steps with source lines.

use serde::{Deserialize, Serialize};

mod locate;
mod parse;

pub(crate) use locate::{culprit_key, plain};
pub use parse::{content_hash, parse_file_name, parse_folder, parse_invariants, parse_migration};

use crate::schema::Value;
use crate::space::{Metric, Space};

/// One operation of a migration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case", deny_unknown_fields)]
pub enum Step {
    /// Add a metadata field, filled with `default` (or null).
    AddField {
        /// New field name.
        field: String,
        /// Type name (see [`crate::schema::FieldType::parse`]).
        #[serde(rename = "type")]
        ty: String,
        /// Value for existing rows.
        #[serde(default)]
        default: Option<Value>,
        /// Whether the field may be null (default true).
        #[serde(default = "yes")]
        nullable: bool,
    },
    /// Rename a field.
    RenameField {
        /// Current name.
        from: String,
        /// New name.
        to: String,
    },
    /// Drop a metadata field.
    DropField {
        /// Field to drop.
        field: String,
    },
    /// Change a field's type; only lossless widenings are allowed.
    CastField {
        /// Field to cast.
        field: String,
        /// Target type name.
        to: String,
    },
    /// Fill a field with a constant or a copy of another field.
    Backfill {
        /// Field to fill.
        field: String,
        /// Constant value.
        #[serde(default)]
        value: Option<Value>,
        /// Copy from this field instead.
        #[serde(default)]
        copy_from: Option<String>,
        /// Only fill rows where the field is null (default true).
        #[serde(default = "yes")]
        only_null: bool,
    },
    /// Declare a new embedding space and add its (empty) vector column.
    AddSpace {
        /// Space name.
        space: String,
        /// Provider.
        #[serde(default)]
        provider: String,
        /// Model.
        #[serde(default)]
        model: String,
        /// Revision.
        #[serde(default)]
        revision: String,
        /// Dimension.
        dimension: usize,
        /// Metric (default cosine).
        #[serde(default)]
        metric: Metric,
        /// Whether the model emits unit vectors.
        #[serde(default)]
        normalized: bool,
        /// Query prefix the model expects.
        #[serde(default)]
        query_prefix: String,
        /// Passage prefix the model expects.
        #[serde(default)]
        passage_prefix: String,
    },
    /// Embed every record's source text into a space with an embedder the host supplies.
    Reembed {
        /// Target space (declared by `add_space`).
        space: String,
        /// Embedder name, supplied by the host program.
        embedder: String,
        /// Field holding the text (default `content`).
        #[serde(default = "content")]
        source: String,
        /// Rows per embedder call.
        #[serde(default)]
        batch_size: Option<usize>,
        /// Make the space the active one when done (default true).
        #[serde(default = "yes")]
        activate: bool,
        /// Upper bound on embedded rows per second (default: unthrottled).
        #[serde(default)]
        throttle: Option<f64>,
        /// Seconds between on-disk checkpoints of embedded vectors (default 10).
        #[serde(default)]
        checkpoint_seconds: Option<f64>,
        /// The space the new one replaces, compared on a sample before the backfill
        /// (default: the active space when the step starts; none: no comparison).
        #[serde(default)]
        compare_to: Option<String>,
        /// How the new space relates to the old one; verified on the sample, and the
        /// migration is blocked when it does not hold (default: not declared).
        #[serde(default)]
        mode: Option<crate::compat::CompatMode>,
        /// Rows embedded up front to compare the spaces and fit the adapter (default 2000).
        #[serde(default)]
        sample: Option<usize>,
        /// Retention (share of the old model's hits kept, see `adapter.retention`) the
        /// chosen adapter needs for `mode = "adapter"` to hold (default 0.9).
        #[serde(default)]
        min_retention: Option<f64>,
        /// Retention an adapter needs to be kept and serve new-model queries against
        /// the replaced space during the backfill (default 0.7; at most
        /// `min_retention`).
        #[serde(default)]
        serve_min_retention: Option<f64>,
        /// Neighbours per row for the compatibility metrics (default 10).
        #[serde(default)]
        k: Option<usize>,
        /// Prefix the embedder puts before queries (e.g. `query: `); must equal the
        /// space's, or lint reports it.
        #[serde(default)]
        query_prefix: Option<String>,
        /// Prefix the embedder puts before passages (e.g. `passage: `); must equal the
        /// space's, or lint reports it.
        #[serde(default)]
        passage_prefix: Option<String>,
        /// Retention of the replaced space after the re-embed completes (`"7d"`, `"12h"`,
        /// `"0s"`): once it has passed, the next `apply` (or `memlane contract --due`)
        /// drops the old space's columns. Default: kept until contracted explicitly.
        #[serde(default)]
        contract_after: Option<String>,
        /// The vector index to build on the new space before it becomes active
        /// (`[steps.index]`; default: the replaced active space's index kind and
        /// serving parameters, when it has one).
        #[serde(default)]
        index: Option<Box<crate::index::IndexSpec>>,
    },
    /// Build (or rebuild) Lance's vector index on a space; `index_recall@10` against
    /// exact search on a sample must reach `min_recall` or the step is blocked.
    CreateIndex {
        /// The space to index.
        space: String,
        /// What to build (`index = { kind = "ivf_pq", partitions = 64 }` or a
        /// `[steps.index]` table).
        index: crate::index::IndexSpec,
    },
    /// Fold rows added since a space's index was built into it (Lance's incremental
    /// index optimisation).
    OptimizeIndex {
        /// The indexed space.
        space: String,
    },
    /// Matryoshka truncation: a new space with the first `dimension` components, renormalised.
    Truncate {
        /// Source space.
        from: String,
        /// New space name.
        space: String,
        /// Kept dimensions.
        dimension: usize,
        /// Make the new space active (default true).
        #[serde(default = "yes")]
        activate: bool,
    },
    /// Scale a space's vectors to unit length, in place.
    Normalize {
        /// Space to normalise.
        space: String,
    },
    /// Delete the records matching a SQL predicate.
    DeleteWhere {
        /// SQL filter, e.g. `status = 'expired'`.
        predicate: String,
    },
    /// Remove duplicate records, keeping the newest of each group.
    Dedupe {
        /// Field that identifies duplicates (default `id`).
        #[serde(default = "id")]
        by: String,
        /// Field that orders records; the largest wins (default `updated_at`).
        #[serde(default = "updated_at")]
        order_by: String,
    },
    /// Switch the active space.
    SetActiveSpace {
        /// Space to activate.
        space: String,
    },
}

fn yes() -> bool {
    true
}
fn content() -> String {
    crate::schema::CONTENT.to_owned()
}
fn id() -> String {
    crate::schema::ID.to_owned()
}
fn updated_at() -> String {
    "updated_at".to_owned()
}

/// Names of all ops, for hints.
pub const OPS: &str = "add_field, rename_field, drop_field, cast_field, backfill, add_space, reembed, truncate, normalize, delete_where, dedupe, set_active_space, create_index, optimize_index";

impl Step {
    /// The op name as written in files.
    pub fn op(&self) -> &'static str {
        match self {
            Step::AddField { .. } => "add_field",
            Step::RenameField { .. } => "rename_field",
            Step::DropField { .. } => "drop_field",
            Step::CastField { .. } => "cast_field",
            Step::Backfill { .. } => "backfill",
            Step::AddSpace { .. } => "add_space",
            Step::Reembed { .. } => "reembed",
            Step::Truncate { .. } => "truncate",
            Step::Normalize { .. } => "normalize",
            Step::DeleteWhere { .. } => "delete_where",
            Step::Dedupe { .. } => "dedupe",
            Step::SetActiveSpace { .. } => "set_active_space",
            Step::CreateIndex { .. } => "create_index",
            Step::OptimizeIndex { .. } => "optimize_index",
        }
    }

    /// Whether the step writes, renames, casts or drops field `name` (its values may
    /// then differ from the version before, on purpose).
    pub fn touches_field(&self, name: &str) -> bool {
        match self {
            Step::AddField { field, .. }
            | Step::DropField { field }
            | Step::CastField { field, .. }
            | Step::Backfill { field, .. } => field == name,
            Step::RenameField { from, to } => from == name || to == name,
            _ => false,
        }
    }

    /// The space this step creates (`add_space`, `truncate`), built from the step and
    /// the existing spaces; `None` for other ops or an unknown source space.
    pub fn new_space(&self, spaces: &[Space]) -> Option<Space> {
        match self {
            Step::AddSpace {
                space,
                provider,
                model,
                revision,
                dimension,
                metric,
                normalized,
                query_prefix,
                passage_prefix,
            } => {
                let mut s = Space::new(space.clone(), *dimension)
                    .with_model(provider, model, revision)
                    .with_metric(*metric)
                    .with_normalized(*normalized);
                s.query_prefix.clone_from(query_prefix);
                s.passage_prefix.clone_from(passage_prefix);
                Some(s)
            }
            Step::Truncate {
                from,
                space,
                dimension,
                ..
            } => {
                let src = spaces.iter().find(|s| s.name == *from)?;
                let mut s = src.clone();
                s.name.clone_from(space);
                s.column = crate::space::default_column(space);
                s.dimension = *dimension;
                s.normalized = true;
                s.fingerprint = None;
                s.index = None;
                // truncated vectors are not what the source's embedder returns
                s.embedder = None;
                s.revision = format!("{}+truncate{dimension}", src.revision);
                Some(s)
            }
            _ => None,
        }
    }

    /// The adapter thresholds of a `reembed` (its `min_retention` and
    /// `serve_min_retention`, else the defaults); the defaults for any other step.
    pub fn mode_thresholds(&self) -> crate::compat::ModeThresholds {
        let mut t = crate::compat::ModeThresholds::default();
        if let Step::Reembed {
            min_retention,
            serve_min_retention,
            ..
        } = self
        {
            t.min_retention = min_retention.unwrap_or(t.min_retention);
            t.serve_min_retention = serve_min_retention.unwrap_or(t.serve_min_retention);
        }
        t
    }

    /// The space this step makes active, if any.
    pub fn activates(&self) -> Option<&str> {
        match self {
            Step::Reembed {
                space,
                activate: true,
                ..
            }
            | Step::Truncate {
                space,
                activate: true,
                ..
            }
            | Step::SetActiveSpace { space } => Some(space),
            _ => None,
        }
    }

    /// The state after this step: new spaces, normalisation, active space. The store
    /// records exactly this; the planner simulates with the same function.
    pub fn evolve_state(&self, state: &crate::state::StoreState) -> crate::state::StoreState {
        let mut st = state.clone();
        if let Some(s) = self.new_space(&st.spaces) {
            st.spaces.push(s);
        }
        if let Step::Normalize { space } = self
            && let Some(s) = st.spaces.iter_mut().find(|s| s.name == *space)
        {
            s.normalized = true;
        }
        if let Some((space, spec)) = self.index_after(state)
            && let Some(s) = st.spaces.iter_mut().find(|s| s.name == space)
        {
            s.index = Some(spec);
        }
        if let Some(a) = self.activates() {
            st.active_space = Some(a.to_owned());
        }
        // the space remembers the embedder that filled it (add and search find it)
        if let Step::Reembed {
            space, embedder, ..
        } = self
            && let Some(s) = st.spaces.iter_mut().find(|s| s.name == *space)
        {
            s.embedder = Some(embedder.clone());
        }
        st
    }

    /// The space whose vector index this step builds or rebuilds (`create_index`,
    /// `optimize_index`), if any.
    pub fn builds_index(&self) -> Option<&str> {
        match self {
            Step::CreateIndex { space, .. } | Step::OptimizeIndex { space } => Some(space),
            _ => None,
        }
    }

    /// The index this step gives a space in `state` (`create_index`; a `reembed`'s
    /// declared index, else — when it activates the space — the active space's carried
    /// over to the new dimension).
    pub fn index_after(
        &self,
        state: &crate::state::StoreState,
    ) -> Option<(String, crate::index::IndexSpec)> {
        match self {
            Step::CreateIndex { space, index } => Some((space.clone(), index.clone())),
            Step::Reembed {
                space,
                index,
                activate,
                ..
            } => {
                let target = state.space(space)?;
                let spec = index.as_deref().cloned().or_else(|| {
                    // carried only to a space that takes over the searches
                    let active = state.active().filter(|a| *activate && a.name != *space)?;
                    Some(active.index.as_ref()?.carried_to(target.dimension))
                })?;
                Some((space.clone(), spec))
            }
            _ => None,
        }
    }

    /// A one-line human description.
    pub fn describe(&self) -> String {
        match self {
            Step::AddField {
                field, ty, default, ..
            } => match default {
                Some(d) => format!("add field `{field}` ({ty}) = {d}"),
                None => format!("add field `{field}` ({ty}), null for existing rows"),
            },
            Step::RenameField { from, to } => format!("rename field `{from}` -> `{to}`"),
            Step::DropField { field } => format!("drop field `{field}`"),
            Step::CastField { field, to } => format!("cast field `{field}` to {to}"),
            Step::Backfill {
                field,
                value,
                copy_from,
                only_null,
            } => {
                let src = match (value, copy_from) {
                    (Some(v), _) => v.to_string(),
                    (None, Some(f)) => format!("`{f}`"),
                    (None, None) => "?".to_owned(),
                };
                format!(
                    "backfill `{field}` from {src}{}",
                    if *only_null { " where null" } else { "" }
                )
            }
            Step::AddSpace {
                space,
                model,
                dimension,
                metric,
                ..
            } => {
                format!(
                    "add space `{space}` ({model}, {dimension}d {})",
                    metric.as_str()
                )
            }
            Step::Reembed {
                space,
                embedder,
                source,
                ..
            } => {
                format!("re-embed `{source}` into space `{space}` with embedder `{embedder}`")
            }
            Step::Truncate {
                from,
                space,
                dimension,
                ..
            } => {
                format!("truncate space `{from}` to {dimension} dims as `{space}` (renormalised)")
            }
            Step::Normalize { space } => format!("normalise vectors of space `{space}`"),
            Step::DeleteWhere { predicate } => format!("delete records where {predicate}"),
            Step::Dedupe { by, order_by } => {
                format!("dedupe by `{by}`, keep the largest `{order_by}`")
            }
            Step::SetActiveSpace { space } => format!("make `{space}` the active space"),
            Step::CreateIndex { space, index } => {
                format!("build a {} vector index on space `{space}`", index.kind)
            }
            Step::OptimizeIndex { space } => {
                format!("fold new rows into the vector index of space `{space}`")
            }
        }
    }
}

/// Severity of an invariant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Blocks the step.
    #[default]
    Fail,
    /// Reported and recorded only.
    Warn,
}

impl Severity {
    /// Name as written in files.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Fail => "fail",
            Severity::Warn => "warn",
        }
    }
}

/// Built-in invariant checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CheckKind {
    /// rows before - deleted + added = after.
    RowsAccounted,
    /// ids unique and non-null.
    IdsUnique,
    /// vectors of a space (default: active spaces) finite and of the right dimension.
    VectorsValid,
    /// a SQL predicate that rows must satisfy (`mostly` of them).
    Expression,
    /// the number of rows stays within `min`..=`max`.
    RowCount,
    /// the set of ids is the one before the step, minus the rows the step deleted
    /// (compared by an order-independent set digest, not a count).
    IdsPreserved,
    /// `content` of every surviving record is byte-for-byte what it was before the step
    /// (per-row blake3 digests), unless the step rewrote it.
    ContentUnchanged,
    /// a metadata field: its type, `required` (non-null), allowed `values`, a
    /// `min_value`..=`max_value` range.
    Field,
    /// relationship targets and `supersedes` point at existing records, and
    /// `supersedes` chains have no cycle.
    References,
    /// no two records of a space share exactly the same vector (or, with `near`, a
    /// cosine at or above it among nearest neighbours).
    Duplicates,
    /// lifecycle rules of agent memory: a record superseded by another is not active,
    /// and `updated_at` is not before `created_at`.
    Lifecycle,
    /// the space's vector index finds at least `mostly` of the exact 10 nearest
    /// neighbours (`index_recall@10`) over queries spread across its vectors.
    IndexRecall,
}

/// An invariant declared in a migration file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InvariantSpec {
    /// Which check.
    pub check: CheckKind,
    /// Optional name shown in reports.
    #[serde(default)]
    pub name: Option<String>,
    /// SQL predicate for `expression`.
    #[serde(default)]
    pub expr: Option<String>,
    /// Space for `vectors_valid`.
    #[serde(default)]
    pub space: Option<String>,
    /// Fraction of rows that must pass (default 1.0).
    #[serde(default = "one")]
    pub mostly: f64,
    /// `fail` (default) or `warn`.
    #[serde(default)]
    pub severity: Severity,
    /// Lower bound for `row_count`.
    #[serde(default)]
    pub min: Option<u64>,
    /// Upper bound for `row_count`.
    #[serde(default)]
    pub max: Option<u64>,
    /// Field for `field`.
    #[serde(default)]
    pub field: Option<String>,
    /// Expected type of the field (`string`, `int64`, ... as in `add_field`).
    #[serde(default, rename = "type")]
    pub ty: Option<String>,
    /// The field must be non-null (`field`).
    #[serde(default)]
    pub required: bool,
    /// Allowed values (`field`).
    #[serde(default)]
    pub values: Option<Vec<toml::Value>>,
    /// Smallest allowed value (`field`, numeric or timestamp as seconds).
    #[serde(default)]
    pub min_value: Option<f64>,
    /// Largest allowed value (`field`).
    #[serde(default)]
    pub max_value: Option<f64>,
    /// Smallest allowed vector norm (`vectors_valid`).
    #[serde(default)]
    pub min_norm: Option<f64>,
    /// Largest allowed vector norm (`vectors_valid`).
    #[serde(default)]
    pub max_norm: Option<f64>,
    /// Cosine at or above which two vectors count as near-duplicates (`duplicates`).
    #[serde(default)]
    pub near: Option<f64>,
}

fn one() -> f64 {
    1.0
}

impl InvariantSpec {
    /// A built-in invariant of the given kind with defaults.
    pub fn builtin(check: CheckKind) -> Self {
        InvariantSpec {
            check,
            name: None,
            expr: None,
            space: None,
            mostly: 1.0,
            severity: Severity::Fail,
            min: None,
            max: None,
            field: None,
            ty: None,
            required: false,
            values: None,
            min_value: None,
            max_value: None,
            min_norm: None,
            max_norm: None,
            near: None,
        }
    }

    /// The `index_recall@10` check of `space`'s index, blocking below `min_recall`.
    pub fn index_recall(space: &str, min_recall: f64) -> Self {
        InvariantSpec {
            space: Some(space.to_owned()),
            mostly: min_recall,
            ..InvariantSpec::builtin(CheckKind::IndexRecall)
        }
    }

    /// Check that the keys the kind needs are there and make sense.
    pub fn check_well_formed(&self) -> std::result::Result<(), String> {
        let need = |ok: bool, what: &str| if ok { Ok(()) } else { Err(what.to_owned()) };
        match self.check {
            CheckKind::Expression => need(
                self.expr.is_some(),
                "`expression` needs `expr = \"SQL predicate\"`",
            )?,
            CheckKind::Field => need(self.field.is_some(), "`field` needs `field = \"name\"`")?,
            _ => {}
        }
        if let Some(t) = &self.ty {
            need(
                crate::schema::FieldType::parse(t).is_some(),
                &format!(
                    "`type = \"{t}\"` is not a type; use one of {}",
                    crate::schema::FieldType::NAMES
                ),
            )?;
        }
        for (key, v) in [
            ("min_value", self.min_value),
            ("max_value", self.max_value),
            ("min_norm", self.min_norm),
            ("max_norm", self.max_norm),
        ] {
            // a NaN bound compares false with everything: the check would pass silently
            need(
                !v.is_some_and(f64::is_nan),
                &format!("`{key}` is nan; give a number"),
            )?;
        }
        if let Some(n) = self.near {
            need(n > 0.0 && n <= 1.0, "`near` is a cosine in (0, 1]")?;
        }
        if let (Some(a), Some(b)) = (self.min_norm, self.max_norm) {
            need(a <= b, "`min_norm` is above `max_norm`")?;
        }
        if let (Some(a), Some(b)) = (self.min_value, self.max_value) {
            need(a <= b, "`min_value` is above `max_value`")?;
        }
        need(
            self.mostly > 0.0 && self.mostly <= 1.0,
            "`mostly` is a fraction in (0, 1]",
        )
    }

    /// Name shown in reports.
    pub fn label(&self) -> String {
        if let Some(n) = &self.name {
            return n.clone();
        }
        match self.check {
            CheckKind::RowsAccounted => "rows_accounted".into(),
            CheckKind::IdsUnique => "ids_unique".into(),
            CheckKind::VectorsValid => match &self.space {
                Some(s) => format!("vectors_valid[{s}]"),
                None => "vectors_valid".into(),
            },
            CheckKind::Expression => format!("expression[{}]", self.expr.as_deref().unwrap_or("")),
            CheckKind::RowCount => "row_count".into(),
            CheckKind::IdsPreserved => "ids_preserved".into(),
            CheckKind::ContentUnchanged => "content_unchanged".into(),
            CheckKind::Field => format!("field[{}]", self.field.as_deref().unwrap_or("")),
            CheckKind::References => "references".into(),
            CheckKind::Duplicates => match &self.space {
                Some(s) => format!("duplicates[{s}]"),
                None => "duplicates".into(),
            },
            CheckKind::Lifecycle => "lifecycle".into(),
            CheckKind::IndexRecall => match &self.space {
                Some(s) => format!("index_recall@10[{s}]"),
                None => "index_recall@10".into(),
            },
        }
    }
}

/// A step with the line it starts on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepAt {
    /// The operation.
    pub step: Step,
    /// 1-based line of its `[[steps]]` header.
    pub line: usize,
}

/// A parsed migration file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Migration {
    /// Number from the file name.
    pub id: u32,
    /// Slug from the file name.
    pub slug: String,
    /// File name, e.g. `0002_add_topic.toml`.
    pub file: String,
    /// Human description.
    pub description: String,
    /// Ordered steps.
    pub steps: Vec<StepAt>,
    /// Invariants checked after each step.
    pub invariants: Vec<InvariantSpec>,
    /// Thresholds on the compatibility metrics of its re-embeds (`[gates]`).
    pub gates: Vec<crate::compat::Gate>,
    /// blake3 of the canonical content (hex).
    pub content_hash: String,
}

const CHECKS_HINT: &str = "`check` is one of rows_accounted, ids_unique, vectors_valid, expression, row_count, ids_preserved, content_unchanged, field, references, duplicates, lifecycle (docs/migrations.md#invariants)";

/// The store-level invariants file of a migrations folder: checked after every step of
/// every migration and by `memlane validate`.
pub const STORE_INVARIANTS: &str = "invariants.toml";

/// The configuration file a migrations folder may hold beside its migrations
/// (`[embedders.NAME]` tables); never read as a migration.
pub const CONFIG_FILE: &str = "memlane.toml";

/// The `vectors_valid` check of space `space`: the one `declared` names it in, else the
/// built-in for that space.
pub fn vectors_spec<'a>(
    declared: impl IntoIterator<Item = &'a InvariantSpec>,
    space: &str,
) -> InvariantSpec {
    declared
        .into_iter()
        .find(|d| d.check == CheckKind::VectorsValid && d.space.as_deref() == Some(space))
        .cloned()
        .unwrap_or_else(|| {
            let mut s = InvariantSpec::builtin(CheckKind::VectorsValid);
            s.space = Some(space.to_owned());
            s
        })
}

/// Parse a retention such as `90s`, `15m`, `12h`, `7d` or `2w` (a bare number is
/// seconds) into seconds.
pub fn parse_duration(s: &str) -> std::result::Result<u64, String> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: u64 = num
        .parse()
        .map_err(|_| format!("`{s}` is not a duration; write e.g. 30m, 12h, 7d"))?;
    let mult = match unit.trim() {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3_600,
        "d" => 86_400,
        "w" => 604_800,
        other => {
            return Err(format!(
                "unknown unit `{other}` in `{s}`; use s, m, h, d or w"
            ));
        }
    };
    n.checked_mul(mult)
        .ok_or_else(|| format!("`{s}` is too long a duration"))
}

#[cfg(test)]
mod duration_tests {
    use super::parse_duration;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("0s"), Ok(0));
        assert_eq!(parse_duration("90"), Ok(90));
        assert_eq!(parse_duration("15m"), Ok(900));
        assert_eq!(parse_duration("7d"), Ok(604_800));
        assert!(parse_duration("7 days").is_err());
        assert!(parse_duration("soon").is_err());
    }
}
