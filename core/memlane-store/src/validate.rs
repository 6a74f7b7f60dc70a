//! The data invariants of issue 6 on a Lance version: ids preserved and content
//! unchanged against an earlier version, metadata field rules, references, duplicate
//! vectors, lifecycle; and `Store::validate`, which runs every built-in plus declared
//! checks on the current version. The accumulators are in `memlane_core::audit`; this
//! module reads the columns they need.

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::{
    DataType, Float32Type, Float64Type, Int8Type, Int16Type, Int32Type, Int64Type, TimeUnit,
    TimestampMicrosecondType, TimestampMillisecondType, TimestampNanosecondType,
    TimestampSecondType, UInt8Type, UInt16Type, UInt32Type, UInt64Type,
};
use futures::TryStreamExt;
use lance::Dataset;
use memlane_core::audit::{
    DuplicateAudit, FieldAudit, LifecycleAudit, ReferenceAudit, Scalar, VersionAudit,
};
use memlane_core::migration::{CheckKind, InvariantSpec};
use memlane_core::report::InvariantResult;
use memlane_core::schema::{CONTENT, FieldType, ID};
use memlane_core::{Space, StoreState};
use serde::{Deserialize, Serialize};

use crate::error::{Result, StoreError};
use crate::store::Store;

/// The fields the lifecycle rules read (all needed).
const LIFECYCLE_FIELDS: [&str; 4] = ["status", "supersedes", "created_at", "updated_at"];

/// Whether `ds` has a field the reference check reads.
fn has_reference_fields(ds: &Dataset) -> bool {
    has(ds, "supersedes") || has(ds, "relationships")
}

/// Whether `ds` has every field the lifecycle rules read.
fn has_lifecycle_fields(ds: &Dataset) -> bool {
    LIFECYCLE_FIELDS.iter().all(|c| has(ds, c))
}

/// Lance's system column: the version a row was first written at.
const ROW_CREATED_AT_VERSION: &str = "_row_created_at_version";

fn has(ds: &Dataset, col: &str) -> bool {
    ds.schema().field(col).is_some()
}

fn skipped(spec: &InvariantSpec, why: String) -> InvariantResult {
    InvariantResult::from_counts(
        spec.label(),
        spec.check,
        spec.severity,
        1.0,
        0,
        0,
        vec![],
        why,
    )
}

/// Rows of `after` that existed at `base` (others' appends during the step are left out).
fn as_of(after: &Dataset, base: &Dataset) -> Option<String> {
    after
        .manifest()
        .uses_stable_row_ids()
        .then(|| format!("_row_created_at_version <= {}", base.version().version))
}

/// The ids (and, with `content`, the per-row content) of `base` fed to the audit, then
/// those of the rows of `after` that existed at `base`: one scan per version.
async fn compare_versions(base: &Dataset, after: &Dataset, content: bool) -> Result<VersionAudit> {
    let mut audit = scan_before(base, content).await?;
    let cols: &[&str] = if content { &[ID, CONTENT] } else { &[ID] };
    let mut s = crate::migrate::scan_stream(after, cols, as_of(after, base).as_deref()).await?;
    while let Some(b) = s.try_next().await? {
        let id = b.column(0).as_string::<i32>();
        let t = content.then(|| b.column(1).as_string::<i32>());
        for i in 0..b.num_rows() {
            let c = t.and_then(|t| t.is_valid(i).then(|| t.value(i)));
            audit.after(id.value(i), c);
        }
    }
    Ok(audit)
}

/// The "before" side of the version comparison: one scan of `base`'s ids (and content).
async fn scan_before(base: &Dataset, content: bool) -> Result<VersionAudit> {
    let mut audit = VersionAudit::with_capacity(content, base.count_rows(None).await?);
    let cols: &[&str] = if content { &[ID, CONTENT] } else { &[ID] };
    let mut s = crate::migrate::scan_stream(base, cols, None).await?;
    while let Some(b) = s.try_next().await? {
        let id = b.column(0).as_string::<i32>();
        let t = content.then(|| b.column(1).as_string::<i32>());
        for i in 0..b.num_rows() {
            audit.before(
                id.value(i),
                t.and_then(|t| t.is_valid(i).then(|| t.value(i))),
            );
        }
    }
    Ok(audit)
}

/// What `validate` checks in its one scan of the current version: the first
/// `ids_unique`, `references` and `lifecycle` specs (when their fields exist), every
/// space's vectors, and the rows the comparison with the base version needs.
#[derive(Debug, Clone, Default)]
struct CurrentPlan {
    ids: Option<InvariantSpec>,
    refs: Option<InvariantSpec>,
    life: Option<InvariantSpec>,
    /// (space, vectors required, its `vectors_valid` spec)
    vectors: Vec<(Space, bool, InvariantSpec)>,
    /// Keep the rows that existed at this version (all rows when the store has no
    /// stable row ids), with their content digests when the flag is set.
    after: Option<(u64, bool)>,
}

/// The rows of the current version the comparison reads: id key and content digest,
/// and the ids as text in one buffer (for the report's sample ids).
#[derive(Debug, Default)]
struct AfterRows {
    rows: Vec<(u128, u128)>,
    names: String,
    ends: Vec<usize>,
}

impl AfterRows {
    fn with_capacity(rows: usize) -> Self {
        AfterRows {
            rows: Vec::with_capacity(rows),
            names: String::with_capacity(rows * 8),
            ends: Vec::with_capacity(rows),
        }
    }

    fn push(&mut self, id: &str, key: u128, content: u128) {
        self.rows.push((key, content));
        self.names.push_str(id);
        self.ends.push(self.names.len());
    }

    /// Feed them to the "after" side of the audit.
    fn feed(&self, audit: &mut VersionAudit) {
        let name = |i: usize| &self.names[if i == 0 { 0 } else { self.ends[i - 1] }..self.ends[i]];
        for (i, (key, c)) in self.rows.iter().enumerate() {
            audit.after_digest(name(i), *key, *c);
        }
    }
}

/// The outcome of [`scan_current`].
#[derive(Debug, Default)]
struct CurrentResults {
    ids: Option<InvariantResult>,
    refs: Option<InvariantResult>,
    life: Option<InvariantResult>,
    vectors: Vec<InvariantResult>,
}

/// One scan of `ds` feeding every check of `plan`: each id hashed once for all of them.
/// The rows the version comparison needs go to `after`, a batch at a time, so the
/// comparison runs beside the scan once the base version is read.
async fn scan_current(
    ds: &Dataset,
    plan: &CurrentPlan,
    after: Option<tokio::sync::mpsc::UnboundedSender<AfterRows>>,
) -> Result<CurrentResults> {
    use memlane_core::invariant::{IdAudit, VectorAudit};
    let mut cols: Vec<&str> = vec![ID];
    let mut want = |c: &'static str| {
        if has(ds, c) && !cols.contains(&c) {
            cols.push(c);
        }
    };
    if plan.refs.is_some() {
        want("supersedes");
        want("relationships");
    }
    if plan.life.is_some() {
        for c in LIFECYCLE_FIELDS {
            want(c);
        }
    }
    if plan.after.is_some_and(|(_, content)| content) {
        want(CONTENT);
    }
    let stable = ds.manifest().uses_stable_row_ids();
    if plan.after.is_some() && stable {
        cols.push(ROW_CREATED_AT_VERSION);
    }
    for (sp, _, _) in &plan.vectors {
        cols.push(sp.column.as_str());
    }
    let rows = ds.count_rows(None).await?;
    // one id table for all: references and lifecycle read the keys `ids_unique` keeps
    let share = plan.refs.is_some() || plan.life.is_some();
    let mut ids = (plan.ids.is_some() || share).then(|| IdAudit::with_capacity(rows));
    let mut refs = plan.refs.as_ref().map(|_| ReferenceAudit::sharing_ids());
    let mut life = plan.life.as_ref().map(|_| LifecycleAudit::sharing_ids());
    let mut vectors: Vec<VectorAudit> = plan
        .vectors
        .iter()
        .map(|(sp, _, spec)| {
            VectorAudit::new(sp.clone()).with_norm_range(spec.min_norm, spec.max_norm)
        })
        .collect();
    let need_keys = ids.is_some() || refs.is_some() || life.is_some() || after.is_some();
    let after = after.zip(plan.after);
    let mut keys: Vec<u128> = Vec::new();
    let mut s = crate::migrate::scan_stream(ds, &cols, None).await?;
    while let Some(b) = s.try_next().await? {
        let n = b.num_rows();
        let id = b.column(0).as_string::<i32>();
        keys.clear();
        if need_keys {
            keys.extend((0..n).map(|i| memlane_core::audit::id_key(id.value(i))));
        }
        let text = |c: &str| b.column_by_name(c).map(|c| c.as_string::<i32>());
        fn opt(a: Option<&arrow::array::StringArray>, i: usize) -> Option<&str> {
            a.and_then(|a| a.is_valid(i).then(|| a.value(i)))
        }
        if let Some(a) = &mut ids {
            for (i, key) in keys.iter().enumerate() {
                a.feed_key(id.is_valid(i).then(|| (id.value(i), *key)));
            }
        }
        let sup = text("supersedes");
        if let Some(a) = &mut refs {
            let rel = relationships(&b);
            for (i, key) in keys.iter().enumerate() {
                let t = targets(rel, i);
                a.feed_key(id.value(i), *key, opt(sup, i), t.iter().flatten().flatten());
            }
        }
        if let Some(a) = &mut life {
            let st = text("status");
            let micros = |c: &str| {
                b.column_by_name(c)
                    .and_then(|c| c.as_primitive_opt::<TimestampMicrosecondType>())
            };
            let (created, updated) = (micros("created_at"), micros("updated_at"));
            let ts = |c: Option<&arrow::array::TimestampMicrosecondArray>, i: usize| {
                c.and_then(|c| c.is_valid(i).then(|| c.value(i)))
            };
            for (i, key) in keys.iter().enumerate() {
                a.feed_key(
                    id.value(i),
                    *key,
                    opt(st, i),
                    opt(sup, i),
                    ts(created, i),
                    ts(updated, i),
                );
            }
        }
        for ((sp, required, _), audit) in plan.vectors.iter().zip(&mut vectors) {
            if let Some(v) = b
                .column_by_name(&sp.column)
                .and_then(|c| c.as_fixed_size_list_opt())
            {
                crate::migrate::feed_vectors(audit, id, v, *required);
            }
        }
        if let Some((tx, (base, content))) = &after {
            let (base, content) = (*base, *content);
            let mut rows = AfterRows::with_capacity(n);
            let created = b
                .column_by_name(ROW_CREATED_AT_VERSION)
                .and_then(|c| c.as_primitive_opt::<UInt64Type>());
            let t = content.then(|| text(CONTENT)).flatten();
            for (i, key) in keys.iter().enumerate() {
                // rows others appended after the base version are not compared
                if created.is_some_and(|c| c.is_valid(i) && c.value(i) > base) {
                    continue;
                }
                let c = if content {
                    memlane_core::audit::content_digest(*key, opt(t, i))
                } else {
                    0
                };
                rows.push(id.value(i), *key, c);
            }
            // the comparison task is gone only if it failed; its error is reported
            let _ = tx.send(rows);
        }
    }
    let keys = ids.as_ref().map(IdAudit::keys);
    let refs = refs
        .zip(plan.refs.as_ref())
        .zip(keys)
        .map(|((a, spec), k)| a.finish_with_ids(spec, k));
    let life = life
        .zip(plan.life.as_ref())
        .zip(keys)
        .map(|((a, spec), k)| a.finish_with_ids(spec, k));
    Ok(CurrentResults {
        ids: ids.zip(plan.ids.as_ref()).map(|(a, spec)| a.finish(spec)),
        refs,
        life,
        vectors: vectors
            .into_iter()
            .zip(&plan.vectors)
            .map(|(a, (_, _, spec))| a.finish(spec))
            .collect(),
    })
}

/// The ids of `base` against those of `after` (minus `deleted` rows the step removed).
pub(crate) async fn ids_preserved(
    spec: &InvariantSpec,
    base: &Dataset,
    after: &Dataset,
    deleted: u64,
) -> Result<InvariantResult> {
    let audit = compare_versions(base, after, false).await?;
    Ok(audit.ids_result(spec, deleted))
}

/// Per-row `content` of `base` against `after`.
pub(crate) async fn content_unchanged(
    spec: &InvariantSpec,
    base: &Dataset,
    after: &Dataset,
) -> Result<InvariantResult> {
    if !has(base, CONTENT) || !has(after, CONTENT) {
        return Ok(skipped(spec, "no `content` field".into()));
    }
    let audit = compare_versions(base, after, true).await?;
    Ok(audit.content_result(spec))
}

/// One metadata value as the field rules read it (timestamps as seconds since the
/// epoch); also what a review sample holds for it (`Scalar::to_json`).
pub(crate) fn scalar_at(col: &dyn Array, i: usize) -> Scalar<'_> {
    if col.is_null(i) {
        return Scalar::Null;
    }
    macro_rules! int {
        ($t:ty) => {
            Scalar::Int(i64::from(col.as_primitive::<$t>().value(i)))
        };
    }
    #[allow(clippy::cast_precision_loss)]
    let seconds = |v: i64, per: f64| Scalar::Float(v as f64 / per);
    match col.data_type() {
        DataType::Utf8 => Scalar::Str(col.as_string::<i32>().value(i)),
        DataType::LargeUtf8 => Scalar::Str(col.as_string::<i64>().value(i)),
        DataType::Boolean => Scalar::Bool(col.as_boolean().value(i)),
        DataType::Int8 => int!(Int8Type),
        DataType::Int16 => int!(Int16Type),
        DataType::Int32 => int!(Int32Type),
        DataType::Int64 => Scalar::Int(col.as_primitive::<Int64Type>().value(i)),
        DataType::UInt8 => int!(UInt8Type),
        DataType::UInt16 => int!(UInt16Type),
        DataType::UInt32 => int!(UInt32Type),
        #[allow(clippy::cast_precision_loss)]
        DataType::UInt64 => {
            let v = col.as_primitive::<UInt64Type>().value(i);
            i64::try_from(v).map_or(Scalar::Float(v as f64), Scalar::Int)
        }
        DataType::Float32 => Scalar::Float(f64::from(col.as_primitive::<Float32Type>().value(i))),
        DataType::Float64 => Scalar::Float(col.as_primitive::<Float64Type>().value(i)),
        DataType::Timestamp(unit, _) => match unit {
            TimeUnit::Second => seconds(col.as_primitive::<TimestampSecondType>().value(i), 1.0),
            TimeUnit::Millisecond => {
                seconds(col.as_primitive::<TimestampMillisecondType>().value(i), 1e3)
            }
            TimeUnit::Microsecond => {
                seconds(col.as_primitive::<TimestampMicrosecondType>().value(i), 1e6)
            }
            TimeUnit::Nanosecond => {
                seconds(col.as_primitive::<TimestampNanosecondType>().value(i), 1e9)
            }
        },
        // other types: only the null rule applies
        _ => Scalar::Other,
    }
}

/// A metadata field's type, required-ness, allowed values and range.
pub(crate) async fn field(spec: &InvariantSpec, ds: &Dataset) -> Result<InvariantResult> {
    let name = spec.field.clone().unwrap_or_default();
    let Some(f) = ds.schema().field(&name) else {
        let known: Vec<String> = ds.schema().fields.iter().map(|f| f.name.clone()).collect();
        return Ok(InvariantResult::from_counts(
            spec.label(),
            CheckKind::Field,
            spec.severity,
            1.0,
            0,
            1,
            vec![],
            format!(
                "field `{name}` does not exist (fields: {}); add it with `add_field` or fix the name",
                known.join(", ")
            ),
        ));
    };
    if let Some(want) = &spec.ty {
        let got = crate::convert::core_type(&f.data_type());
        let ok = FieldType::parse(want).is_some_and(|w| w == got);
        if !ok {
            return Ok(InvariantResult::from_counts(
                spec.label(),
                CheckKind::Field,
                spec.severity,
                1.0,
                0,
                1,
                vec![],
                format!("field `{name}` is {got}, expected {want}; cast it with `cast_field`"),
            ));
        }
    }
    let mut a = FieldAudit::new(spec);
    let mut s = crate::migrate::scan_stream(ds, &[ID, name.as_str()], None).await?;
    while let Some(b) = s.try_next().await? {
        let ids = b.column(0).as_string::<i32>();
        let col = b.column(1);
        for i in 0..b.num_rows() {
            a.feed(ids.value(i), scalar_at(col.as_ref(), i));
        }
    }
    Ok(a.finish())
}

/// The `relationships` list of a batch, if it has one.
fn relationships(b: &RecordBatch) -> Option<&arrow::array::ListArray> {
    b.column_by_name("relationships")
        .and_then(|c| c.as_list_opt::<i32>())
}

/// Row `i`'s relationship targets (`None` when it has none).
fn targets(list: Option<&arrow::array::ListArray>, i: usize) -> Option<arrow::array::StringArray> {
    let list = list.filter(|l| l.is_valid(i))?;
    let v = list.value(i);
    let t = v.as_struct_opt()?.column_by_name("target")?;
    t.as_string_opt::<i32>().cloned()
}

/// Ids unique and non-null over all live rows of `ds`.
pub(crate) async fn ids_unique(ds: &Dataset, spec: &InvariantSpec) -> Result<InvariantResult> {
    let plan = CurrentPlan {
        ids: Some(spec.clone()),
        ..CurrentPlan::default()
    };
    let r = scan_current(ds, &plan, None).await?;
    Ok(r.ids.unwrap_or_else(|| skipped(spec, "not checked".into())))
}

/// Relationship targets and `supersedes` exist; `supersedes` chains are acyclic.
pub(crate) async fn references(spec: &InvariantSpec, ds: &Dataset) -> Result<InvariantResult> {
    if !has_reference_fields(ds) {
        return Ok(skipped(
            spec,
            "no `supersedes` or `relationships` field".into(),
        ));
    }
    let plan = CurrentPlan {
        refs: Some(spec.clone()),
        ..CurrentPlan::default()
    };
    let r = scan_current(ds, &plan, None).await?;
    Ok(r.refs
        .unwrap_or_else(|| skipped(spec, "not checked".into())))
}

/// Exact duplicate vectors of a space; with `near`, near-duplicates among the nearest
/// neighbours of up to 20 000 rows (exact kNN).
pub(crate) async fn duplicates(
    spec: &InvariantSpec,
    ds: &Dataset,
    space: &Space,
) -> Result<InvariantResult> {
    let mut a = DuplicateAudit::default();
    let mut sample_ids: Vec<String> = Vec::new();
    let mut sample: Vec<f32> = Vec::new();
    let d = space.dimension;
    let mut s = crate::migrate::scan_stream(ds, &[ID, space.column.as_str()], None).await?;
    while let Some(b) = s.try_next().await? {
        let ids = b.column(0).as_string::<i32>();
        let v = b.column(1).as_fixed_size_list();
        let vals = v.values().as_primitive::<Float32Type>().values();
        for i in 0..b.num_rows() {
            if v.is_null(i) {
                continue;
            }
            #[allow(clippy::cast_sign_loss)]
            let off = v.value_offset(i) as usize;
            let x = &vals[off..off + d];
            a.feed(ids.value(i), x);
            if spec.near.is_some() && sample_ids.len() < 20_000 && x.iter().all(|f| f.is_finite()) {
                sample_ids.push(ids.value(i).to_owned());
                sample.extend_from_slice(x);
            }
        }
    }
    if let Some(near) = spec.near
        && sample_ids.len() > 1
    {
        let m = memlane_core::compat::Matrix::new(&sample, d)?;
        let nn = memlane_core::compat::knn(&m, 1, memlane_core::space::Metric::Cosine)?;
        let mut pairs = Vec::new();
        for (i, row) in nn.iter_rows().enumerate() {
            let j = row[0] as usize;
            // each mutual pair once; identical vectors are counted as exact duplicates
            if (j < i && nn.row(j)[0] as usize == i) || m.row(i) == m.row(j) {
                continue;
            }
            let c = cosine(m.row(i), m.row(j));
            if c >= near {
                pairs.push((sample_ids[j].clone(), sample_ids[i].clone(), c));
            }
        }
        a.near_pairs(&pairs);
    }
    Ok(a.finish(spec, &space.name))
}

fn cosine(a: &[f32], b: &[f32]) -> f64 {
    let (mut d, mut na, mut nb) = (0f64, 0f64, 0f64);
    for (x, y) in a.iter().zip(b) {
        d += f64::from(*x) * f64::from(*y);
        na += f64::from(*x) * f64::from(*x);
        nb += f64::from(*y) * f64::from(*y);
    }
    if na == 0.0 || nb == 0.0 {
        0.0
    } else {
        d / (na.sqrt() * nb.sqrt())
    }
}

/// Agent-memory lifecycle rules.
pub(crate) async fn lifecycle(spec: &InvariantSpec, ds: &Dataset) -> Result<InvariantResult> {
    if !has_lifecycle_fields(ds) {
        return Ok(skipped(
            spec,
            "not an agent-memory store (no status/supersedes/timestamps)".into(),
        ));
    }
    let plan = CurrentPlan {
        life: Some(spec.clone()),
        ..CurrentPlan::default()
    };
    let r = scan_current(ds, &plan, None).await?;
    Ok(r.life
        .unwrap_or_else(|| skipped(spec, "not checked".into())))
}

/// The space a `duplicates` spec names (or the active one).
pub(crate) fn spec_space<'a>(spec: &InvariantSpec, state: &'a StoreState) -> Option<&'a Space> {
    match &spec.space {
        Some(s) => state.space(s),
        None => state.active(),
    }
}

/// What `memlane validate` found on one version.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ValidateReport {
    /// Version validated.
    pub version: u64,
    /// The version `ids_preserved` / `content_unchanged` compared against (if any).
    pub against: Option<u64>,
    /// Live rows.
    pub rows: u64,
    /// Every check, failures and warnings included (never stops at the first).
    pub results: Vec<InvariantResult>,
    /// Per space present in both versions: how its vectors' distribution moved.
    #[serde(default)]
    pub drift: Vec<SpaceDrift>,
}

/// The drift of one space between the compared versions.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SpaceDrift {
    /// Space name.
    pub space: String,
    /// Whether its recorded identity (model, revision, dimension...) changed too.
    pub identity_changed: bool,
    /// Statistics and the MMD² test.
    pub drift: memlane_core::drift::Drift,
}

/// Records sampled for the neighbourhoods of the context-loss report.
const CONTEXT_SAMPLE: usize = 1000;

/// The context-loss report of an apply from `before` to `after` (see
/// [`memlane_core::ContextLoss`]): one scan of ids and content per version, and the
/// neighbourhoods of up to 1000 records spread over the store in the active space
/// before and after.
pub(crate) async fn context_loss(
    before: &Dataset,
    before_state: &StoreState,
    after: &Dataset,
    after_state: &StoreState,
) -> Result<memlane_core::ContextLoss> {
    let k = 10usize;
    let with_content = has(before, CONTENT) && has(after, CONTENT);
    let audit = compare_versions(before, after, with_content).await?;
    let records_before = before.count_rows(None).await? as u64;
    let records_lost = audit.lost();
    let content_changed = audit.changed();
    let mut out = memlane_core::ContextLoss {
        version_before: before.version().version,
        version_after: after.version().version,
        records_before,
        records_lost,
        content_changed,
        space_before: before_state.active_space.clone(),
        space_after: after_state.active_space.clone(),
        sample: 0,
        k,
        neighbours_kept: None,
        context_kept: 1.0,
    };
    #[allow(clippy::cast_precision_loss)]
    let survive_share = if records_before == 0 {
        1.0
    } else {
        1.0 - records_lost as f64 / records_before as f64
    };
    out.context_kept = survive_share;
    let (Some(sb), Some(sa)) = (before_state.active(), after_state.active()) else {
        return Ok(out);
    };
    if !has(before, &sb.column) || !has(after, &sa.column) {
        return Ok(out);
    }
    // the sample: records spread over `before` with a vector there
    let total = before.count_rows(None).await?;
    let want = CONTEXT_SAMPLE.min(total);
    if want <= k + 1 {
        return Ok(out);
    }
    let idx: Vec<u64> = (0..want).map(|i| (i * total / want) as u64).collect();
    let proj = before.schema().project(&[ID, sb.column.as_str()])?;
    let b = before.take(&idx, std::sync::Arc::new(proj)).await?;
    let (bids, bv) = (
        b.column(0).as_string::<i32>(),
        b.column(1).as_fixed_size_list(),
    );
    let mut sample_ids: Vec<String> = Vec::new();
    let mut old = Vec::new();
    for i in 0..b.num_rows() {
        if bv.is_valid(i) {
            let v = bv.value(i);
            let x = v.as_primitive::<Float32Type>().values();
            if x.iter().all(|f| f.is_finite()) && x.iter().any(|f| *f != 0.0) {
                sample_ids.push(bids.value(i).to_owned());
                old.extend_from_slice(x);
            }
        }
    }
    let n = sample_ids.len();
    if n <= k + 1 {
        return Ok(out);
    }
    // the same records after, by id
    let list = sample_ids
        .iter()
        .map(|s| format!("'{}'", s.replace('\'', "''")))
        .collect::<Vec<_>>()
        .join(", ");
    let mut after_vec: std::collections::HashMap<String, Vec<f32>> =
        std::collections::HashMap::new();
    let mut s = crate::migrate::scan_stream(
        after,
        &[ID, sa.column.as_str()],
        Some(&format!("{ID} IN ({list})")),
    )
    .await?;
    while let Some(b) = s.try_next().await? {
        let (ids, v) = (
            b.column(0).as_string::<i32>(),
            b.column(1).as_fixed_size_list(),
        );
        for i in 0..b.num_rows() {
            if v.is_valid(i) {
                let x = v.value(i).as_primitive::<Float32Type>().values().to_vec();
                if x.iter().all(|f| f.is_finite()) && x.iter().any(|f| *f != 0.0) {
                    after_vec.insert(ids.value(i).to_owned(), x);
                }
            }
        }
    }
    let om = memlane_core::compat::Matrix::new(&old, sb.dimension)?;
    let nn_old = memlane_core::compat::knn(&om, k, sb.metric)?;
    // neighbours after, among the sampled records that survive with a vector
    let alive: Vec<usize> = (0..n)
        .filter(|i| after_vec.contains_key(&sample_ids[*i]))
        .collect();
    let mut kept = vec![0f64; n];
    if alive.len() > k + 1 {
        let mut flat = Vec::with_capacity(alive.len() * sa.dimension);
        for i in &alive {
            flat.extend_from_slice(&after_vec[&sample_ids[*i]]);
        }
        let am = memlane_core::compat::Matrix::new(&flat, sa.dimension)?;
        let nn_new = memlane_core::compat::knn(&am, k, sa.metric)?;
        for (pos, i) in alive.iter().enumerate() {
            let new_set: std::collections::HashSet<usize> =
                nn_new.row(pos).iter().map(|j| alive[*j as usize]).collect();
            let hit = nn_old
                .row(*i)
                .iter()
                .filter(|j| new_set.contains(&(**j as usize)))
                .count();
            #[allow(clippy::cast_precision_loss)]
            {
                kept[*i] = hit as f64 / k as f64;
            }
        }
    }
    #[allow(clippy::cast_precision_loss)]
    let mean = kept.iter().sum::<f64>() / n as f64;
    out.sample = n;
    out.neighbours_kept = Some(mean);
    out.context_kept = mean;
    Ok(out)
}

/// Rows sampled per version for the drift test.
const DRIFT_SAMPLE: usize = 500;

/// Up to `n` finite vectors of `space` spread evenly over `ds` (nulls skipped).
async fn spread_vectors(ds: &Dataset, space: &Space, n: usize) -> Result<Vec<f32>> {
    let d = space.dimension;
    let mut out = Vec::with_capacity(n * d);
    for b in crate::compat::spread_rows(ds, &[space.column.as_str()], n).await? {
        let v = b.column(0).as_fixed_size_list();
        let vals = v.values().as_primitive::<Float32Type>().values();
        for i in 0..b.num_rows() {
            if v.is_valid(i) {
                #[allow(clippy::cast_sign_loss)]
                let off = v.value_offset(i) as usize;
                let x = &vals[off..off + d];
                if x.iter().all(|f| f.is_finite()) {
                    out.extend_from_slice(x);
                }
            }
        }
    }
    Ok(out)
}

/// Drift of every space present (with data) in both versions.
async fn drifts(
    base: &Dataset,
    base_state: &StoreState,
    ds: &Dataset,
    state: &StoreState,
) -> Result<Vec<SpaceDrift>> {
    let mut out = Vec::new();
    for sp in &state.spaces {
        let Some(old) = base_state.space(&sp.name) else {
            continue;
        };
        if old.dimension != sp.dimension || !has(base, &old.column) || !has(ds, &sp.column) {
            continue;
        }
        let a = spread_vectors(base, old, DRIFT_SAMPLE).await?;
        let b = spread_vectors(ds, sp, DRIFT_SAMPLE).await?;
        let (Ok(ma), Ok(mb)) = (
            memlane_core::compat::Matrix::new(&a, sp.dimension),
            memlane_core::compat::Matrix::new(&b, sp.dimension),
        ) else {
            continue;
        };
        if let Some(d) = memlane_core::drift::drift(&ma, &mb, 199, 0x6d6d64) {
            let mut o = old.clone();
            let mut n = sp.clone();
            o.fingerprint = None;
            n.fingerprint = None;
            out.push(SpaceDrift {
                space: sp.name.clone(),
                identity_changed: o != n,
                drift: d,
            });
        }
    }
    Ok(out)
}

impl ValidateReport {
    /// Whether no `fail` check failed.
    pub fn ok(&self) -> bool {
        !self.results.iter().any(InvariantResult::blocks)
    }
}

impl std::fmt::Display for ValidateReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "validate version {} ({} rows{}): {}",
            self.version,
            self.rows,
            self.against
                .map_or(String::new(), |a| format!(", against version {a}")),
            if self.ok() { "OK" } else { "FAILED" }
        )?;
        for r in &self.results {
            writeln!(f, "  {r}")?;
        }
        Ok(())
    }
}

/// One check's outcome at one version, from a step report or a `memlane validate` run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckPoint {
    /// Lance version the check describes.
    pub version: u64,
    /// `apply` (a step's invariants) or `validate`.
    pub source: String,
    /// Check name.
    pub check: String,
    /// Rows looked at.
    pub total: u64,
    /// Rows that failed.
    pub failed: u64,
    /// Whether it held.
    pub passed: bool,
    /// Its severity.
    pub severity: memlane_core::Severity,
}

fn points(version: u64, source: &str, results: &[InvariantResult]) -> Vec<CheckPoint> {
    results
        .iter()
        .map(|r| CheckPoint {
            version,
            source: source.to_owned(),
            check: r.name.clone(),
            total: r.total,
            failed: r.failed,
            passed: r.passed,
            severity: r.severity,
        })
        .collect()
}

/// Built-in checks of `memlane validate` (on top of ids and vectors of every space).
fn validate_builtins() -> Vec<InvariantSpec> {
    [
        CheckKind::IdsUnique,
        CheckKind::References,
        CheckKind::Lifecycle,
        CheckKind::IdsPreserved,
        CheckKind::ContentUnchanged,
    ]
    .into_iter()
    .map(|k| {
        let mut s = InvariantSpec::builtin(k);
        // between two versions ids and content may change by design (writers, deletes):
        // reported, and blocking only when a file declares them
        if matches!(k, CheckKind::IdsPreserved | CheckKind::ContentUnchanged) {
            s.severity = memlane_core::Severity::Warn;
        }
        s
    })
    .collect()
}

/// Evaluate one spec on `ds` (with `base` for the checks that compare versions).
pub(crate) async fn evaluate(
    spec: &InvariantSpec,
    ds: &Dataset,
    base: Option<&Dataset>,
    state: &StoreState,
    deleted: u64,
) -> Result<Vec<InvariantResult>> {
    let one = |r: InvariantResult| Ok(vec![r]);
    match spec.check {
        CheckKind::IdsPreserved => match base {
            Some(b) => one(ids_preserved(spec, b, ds, deleted).await?),
            None => one(skipped(spec, "no earlier version to compare with".into())),
        },
        CheckKind::ContentUnchanged => match base {
            Some(b) => one(content_unchanged(spec, b, ds).await?),
            None => one(skipped(spec, "no earlier version to compare with".into())),
        },
        CheckKind::Field => one(field(spec, ds).await?),
        CheckKind::References => one(references(spec, ds).await?),
        CheckKind::Lifecycle => one(lifecycle(spec, ds).await?),
        CheckKind::Duplicates => match spec_space(spec, state) {
            Some(sp) if has(ds, &sp.column) => one(duplicates(spec, ds, sp).await?),
            _ => Err(StoreError::Input(format!(
                "invariant `{}`: no space to check for duplicates; name one with `space = \"...\"`",
                spec.label()
            ))),
        },
        _ => Ok(vec![]),
    }
}

impl Store {
    fn validation_dir(&self) -> std::path::PathBuf {
        crate::sidecar::path(self.uri(), crate::sidecar::VALIDATE)
    }

    /// Keep a validation report with the version it describes (`_memlane/validate/`,
    /// derived data: `validate` recomputes it), for [`Store::validate_history`].
    pub fn record_validation(&self, r: &ValidateReport) -> Result<()> {
        let dir = self.validation_dir();
        let io = |e: std::io::Error| StoreError::Io {
            path: dir.display().to_string(),
            source: e,
        };
        std::fs::create_dir_all(&dir).map_err(io)?;
        let tmp = dir.join(format!(".v{}.json.tmp", r.version));
        let text = serde_json::to_string_pretty(r).map_err(|e| StoreError::Input(e.to_string()))?;
        std::fs::write(&tmp, text).map_err(io)?;
        std::fs::rename(&tmp, dir.join(format!("v{:010}.json", r.version))).map_err(io)?;
        Ok(())
    }

    /// Every check over versions: the invariants recorded in each step's commit and
    /// every kept `memlane validate` report, oldest first (a metrics repository).
    pub async fn validate_history(&self) -> Result<Vec<CheckPoint>> {
        let mut out = Vec::new();
        for h in self.history().await? {
            if let Some(r) = h.entry.as_ref().and_then(|e| e.report.as_ref()) {
                out.extend(points(h.version, "apply", &r.invariants));
            }
        }
        if let Ok(rd) = std::fs::read_dir(self.validation_dir()) {
            let mut files: Vec<_> = rd
                .filter_map(std::result::Result::ok)
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|x| x == "json"))
                .collect();
            files.sort();
            for f in files {
                let Ok(text) = std::fs::read_to_string(&f) else {
                    continue;
                };
                if let Ok(r) = serde_json::from_str::<ValidateReport>(&text) {
                    out.extend(points(r.version, "validate", &r.results));
                }
            }
        }
        out.sort_by(|a, b| a.version.cmp(&b.version).then(a.source.cmp(&b.source)));
        Ok(out)
    }

    /// Run every built-in check (ids unique, vectors of every space valid, references,
    /// lifecycle, ids preserved and content unchanged against `against` — default the
    /// version before the current one) and the `declared` ones on the current version.
    /// Lists every failure; nothing stops at the first.
    pub async fn validate(
        &self,
        declared: &[InvariantSpec],
        against: Option<u64>,
    ) -> Result<ValidateReport> {
        let ds = self.dataset().clone();
        let state = self.state();
        let version = self.version();
        let against = against.or_else(|| version.checked_sub(1).filter(|v| *v >= 1));
        let base = match against {
            Some(v) => Some(ds.checkout_version(v).await?),
            None => None,
        };
        let mut specs = validate_builtins();
        specs.retain(|b| {
            !declared.iter().any(|d| {
                d.check == b.check && d.name.is_none() && d.space.is_none() && d.field.is_none()
            })
        });
        specs.extend(declared.iter().cloned());
        // Two scans, on two tasks: the base version's ids and content, and one scan of the
        // current version for every built-in check of it and the comparison's other side.
        let first = |k: CheckKind| specs.iter().position(|s| s.check == k);
        let (first_ids, first_text) = (
            first(CheckKind::IdsPreserved),
            first(CheckKind::ContentUnchanged),
        );
        let with_content = first_text.is_some()
            && has(&ds, CONTENT)
            && base.as_ref().is_some_and(|b| has(b, CONTENT));
        let compare = base.is_some() && (first_ids.is_some() || with_content);
        // drift samples a few hundred rows of each version: beside the scans
        let drift_task = base.clone().map(|b| {
            let (ds, state) = (ds.clone(), state.clone());
            tokio::spawn(async move {
                let base_state = crate::store::read_state(&b).await?.unwrap_or_default();
                drifts(&b, &base_state, &ds, &state).await
            })
        });
        // the comparison: the base version's scan, then the current rows as they come
        let (tx, before) = match (&base, compare) {
            (Some(b), true) => {
                let b = b.clone();
                let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<AfterRows>();
                let task = tokio::spawn(async move {
                    let mut audit = scan_before(&b, with_content).await?;
                    while let Some(rows) = rx.recv().await {
                        rows.feed(&mut audit);
                    }
                    Ok::<_, StoreError>(audit)
                });
                (Some(tx), Some(task))
            }
            _ => (None, None),
        };
        let mut plan = CurrentPlan {
            after: base
                .as_ref()
                .filter(|_| compare)
                .map(|b| (b.version().version, with_content)),
            ..CurrentPlan::default()
        };
        let (fused_ids, fused_refs, fused_life) = (
            first(CheckKind::IdsUnique),
            first(CheckKind::References).filter(|_| has_reference_fields(&ds)),
            first(CheckKind::Lifecycle).filter(|_| has_lifecycle_fields(&ds)),
        );
        plan.ids = fused_ids.map(|i| specs[i].clone());
        plan.refs = fused_refs.map(|i| specs[i].clone());
        plan.life = fused_life.map(|i| specs[i].clone());
        // vectors of every space (declared specs for a space replace its built-in)
        for sp in &state.spaces {
            if has(&ds, &sp.column) {
                let spec = memlane_core::migration::vectors_spec(declared, &sp.name);
                let required = state.active_space.as_deref() == Some(sp.name.as_str());
                plan.vectors.push((sp.clone(), required, spec));
            }
        }
        let current = {
            let (ds, plan) = (ds.clone(), plan.clone());
            tokio::spawn(async move { scan_current(&ds, &plan, tx).await })
        };
        // the other checks (declared ones, and repeats of a kind) each on a task of its
        // own; results come back in the order of the specs
        type Task = tokio::task::JoinHandle<Result<Vec<InvariantResult>>>;
        enum Slot {
            Task(Task),
            Ids(usize),
            Text(usize),
            Unique,
            References,
            Lifecycle,
        }
        let mut slots = Vec::new();
        for (i, spec) in specs.iter().enumerate() {
            let fused = match i {
                _ if compare && Some(i) == first_ids => Some(Slot::Ids(i)),
                _ if compare && with_content && Some(i) == first_text => Some(Slot::Text(i)),
                _ if Some(i) == fused_ids => Some(Slot::Unique),
                _ if Some(i) == fused_refs => Some(Slot::References),
                _ if Some(i) == fused_life => Some(Slot::Lifecycle),
                _ => None,
            };
            if let Some(slot) = fused {
                slots.push(slot);
                continue;
            }
            if matches!(
                spec.check,
                CheckKind::VectorsValid | CheckKind::RowsAccounted
            ) {
                continue;
            }
            let (spec, ds, base, state) = (spec.clone(), ds.clone(), base.clone(), state.clone());
            slots.push(Slot::Task(tokio::spawn(async move {
                Ok(match spec.check {
                    CheckKind::IdsUnique => vec![crate::migrate::audit_ids(&ds, &spec).await?],
                    CheckKind::RowCount => vec![memlane_core::invariant::row_count(
                        &spec,
                        ds.count_rows(None).await? as u64,
                    )],
                    CheckKind::Expression => {
                        vec![crate::migrate::expression_check(&ds, &spec).await?]
                    }
                    _ => evaluate(&spec, &ds, base.as_ref(), &state, 0).await?,
                })
            })));
        }
        let joined =
            |e: tokio::task::JoinError| StoreError::Input(format!("a validation task failed: {e}"));
        let mut cur = current.await.map_err(joined)??;
        let versions = match before {
            Some(task) => Some(task.await.map_err(joined)??),
            None => None,
        };
        let mut results = Vec::new();
        for slot in slots {
            match slot {
                Slot::Task(t) => results.extend(t.await.map_err(joined)??),
                Slot::Ids(i) => {
                    results.extend(versions.as_ref().map(|a| a.ids_result(&specs[i], 0)))
                }
                Slot::Text(i) => {
                    results.extend(versions.as_ref().map(|a| a.content_result(&specs[i])));
                }
                Slot::Unique => results.extend(cur.ids.take()),
                Slot::References => results.extend(cur.refs.take()),
                Slot::Lifecycle => results.extend(cur.life.take()),
            }
        }
        results.append(&mut cur.vectors);
        let mut drift = Vec::new();
        if let (Some(task), Some(v)) = (drift_task, against) {
            drift = task.await.map_err(joined)??;
            for d in &drift {
                let moved = d.drift.moved && !d.identity_changed;
                let msg = format!(
                    "vectors of `{}` vs version {v}: MMD² {:.4} (p = {:.3}), mean direction cosine {:.3}, norm mean {:.3} -> {:.3}{}",
                    d.space,
                    d.drift.mmd2,
                    d.drift.p_value,
                    d.drift.mean_cosine,
                    d.drift.before.norm_mean,
                    d.drift.after.norm_mean,
                    if moved {
                        "; the distribution moved while the space's identity did not: was its model changed silently? compare with `memlane compat`, or declare a new space"
                    } else {
                        ""
                    }
                );
                results.push(InvariantResult::from_counts(
                    format!("drift[{}]", d.space),
                    CheckKind::VectorsValid,
                    memlane_core::Severity::Warn,
                    1.0,
                    1,
                    u64::from(moved),
                    vec![],
                    msg,
                ));
            }
        }
        Ok(ValidateReport {
            version,
            against,
            rows: ds.count_rows(None).await? as u64,
            results,
            drift,
        })
    }
}
