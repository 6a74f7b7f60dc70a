//! The one scan of the current version that `validate` feeds every built-in check
//! from: ids, references, lifecycle, every space's vectors, and the rows the version
//! comparison needs.

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::{TimestampMicrosecondType, UInt64Type};
use futures::TryStreamExt;
use lance::Dataset;
use memlane_core::Space;
use memlane_core::audit::{LifecycleAudit, ReferenceAudit, VersionAudit};
use memlane_core::invariant::{IdAudit, VectorAudit};
use memlane_core::migration::InvariantSpec;
use memlane_core::report::InvariantResult;
use memlane_core::schema::{CONTENT, ID};

use crate::error::Result;

use super::records::{relationships, targets};
use super::{LIFECYCLE_FIELDS, ROW_CREATED_AT_VERSION, has};

/// What `validate` checks in its one scan of the current version: the first
/// `ids_unique`, `references` and `lifecycle` specs (when their fields exist), every
/// space's vectors, and the rows the comparison with the base version needs.
#[derive(Debug, Clone, Default)]
pub(crate) struct CurrentPlan {
    pub(crate) ids: Option<InvariantSpec>,
    pub(crate) refs: Option<InvariantSpec>,
    pub(crate) life: Option<InvariantSpec>,
    /// (space, vectors required, its `vectors_valid` spec)
    pub(crate) vectors: Vec<(Space, bool, InvariantSpec)>,
    /// Keep the rows that existed at this version (all rows when the store has no
    /// stable row ids), with their content digests when the flag is set.
    pub(crate) after: Option<(u64, bool)>,
}

/// The rows of the current version the comparison reads: id key and content digest,
/// and the ids as text in one buffer (for the report's sample ids).
#[derive(Debug, Default)]
pub(crate) struct AfterRows {
    pub(crate) rows: Vec<(u128, u128)>,
    pub(crate) names: String,
    pub(crate) ends: Vec<usize>,
}

impl AfterRows {
    pub(crate) fn with_capacity(rows: usize) -> Self {
        AfterRows {
            rows: Vec::with_capacity(rows),
            names: String::with_capacity(rows * 8),
            ends: Vec::with_capacity(rows),
        }
    }

    pub(crate) fn push(&mut self, id: &str, key: u128, content: u128) {
        self.rows.push((key, content));
        self.names.push_str(id);
        self.ends.push(self.names.len());
    }

    /// Feed them to the "after" side of the audit.
    pub(crate) fn feed(&self, audit: &mut VersionAudit) {
        let name = |i: usize| &self.names[if i == 0 { 0 } else { self.ends[i - 1] }..self.ends[i]];
        for (i, (key, c)) in self.rows.iter().enumerate() {
            audit.after_digest(name(i), *key, *c);
        }
    }
}

/// The outcome of [`scan_current`].
#[derive(Debug, Default)]
pub(crate) struct CurrentResults {
    pub(crate) ids: Option<InvariantResult>,
    pub(crate) refs: Option<InvariantResult>,
    pub(crate) life: Option<InvariantResult>,
    pub(crate) vectors: Vec<InvariantResult>,
}

/// One scan of `ds` feeding every check of `plan`: each id hashed once for all of them.
/// The rows the version comparison needs go to `after`, a batch at a time, so the
/// comparison runs beside the scan once the base version is read.
pub(crate) async fn scan_current(
    ds: &Dataset,
    plan: &CurrentPlan,
    after: Option<tokio::sync::mpsc::UnboundedSender<AfterRows>>,
) -> Result<CurrentResults> {
    let cols = columns(ds, plan);
    let rows = ds.count_rows(None).await?;
    let mut audits = Audits::new(plan, rows);
    let need_keys = audits.need_keys() || after.is_some();
    let after = after.zip(plan.after);
    let mut keys: Vec<u128> = Vec::new();
    let mut s = crate::engine::scan::stream(ds, Some(&cols), None).await?;
    while let Some(b) = s.try_next().await? {
        let id = b.column(0).as_string::<i32>();
        keys.clear();
        if need_keys {
            keys.extend((0..b.num_rows()).map(|i| memlane_core::audit::id_key(id.value(i))));
        }
        audits.feed(plan, &b, &keys);
        if let Some((tx, (base, content))) = &after {
            // the comparison task is gone only if it failed; its error is reported
            let _ = tx.send(after_rows(&b, &keys, *base, *content));
        }
    }
    Ok(audits.finish(plan))
}

/// The columns the scan reads for `plan`.
fn columns<'a>(ds: &Dataset, plan: &'a CurrentPlan) -> Vec<&'a str> {
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
    if plan.after.is_some() && ds.manifest().uses_stable_row_ids() {
        cols.push(ROW_CREATED_AT_VERSION);
    }
    for (sp, _, _) in &plan.vectors {
        cols.push(sp.column.as_str());
    }
    cols
}

/// A nullable string value.
fn opt(a: Option<&arrow::array::StringArray>, i: usize) -> Option<&str> {
    a.and_then(|a| a.is_valid(i).then(|| a.value(i)))
}

/// A string column of a batch, when present.
fn text<'b>(b: &'b RecordBatch, c: &str) -> Option<&'b arrow::array::StringArray> {
    b.column_by_name(c).map(|c| c.as_string::<i32>())
}

/// The accumulators the scan feeds.
struct Audits {
    ids: Option<IdAudit>,
    refs: Option<ReferenceAudit>,
    life: Option<LifecycleAudit>,
    vectors: Vec<VectorAudit>,
}

impl Audits {
    /// One id table for all: references and lifecycle read the keys `ids_unique` keeps.
    fn new(plan: &CurrentPlan, rows: usize) -> Self {
        let share = plan.refs.is_some() || plan.life.is_some();
        Audits {
            ids: (plan.ids.is_some() || share).then(|| IdAudit::with_capacity(rows)),
            refs: plan.refs.as_ref().map(|_| ReferenceAudit::sharing_ids()),
            life: plan.life.as_ref().map(|_| LifecycleAudit::sharing_ids()),
            vectors: plan
                .vectors
                .iter()
                .map(|(sp, _, spec)| {
                    VectorAudit::new(sp.clone()).with_norm_range(spec.min_norm, spec.max_norm)
                })
                .collect(),
        }
    }

    fn need_keys(&self) -> bool {
        self.ids.is_some() || self.refs.is_some() || self.life.is_some()
    }

    /// Feed one batch (with its ids' keys).
    fn feed(&mut self, plan: &CurrentPlan, b: &RecordBatch, keys: &[u128]) {
        let id = b.column(0).as_string::<i32>();
        if let Some(a) = &mut self.ids {
            for (i, key) in keys.iter().enumerate() {
                a.feed_key(id.is_valid(i).then(|| (id.value(i), *key)));
            }
        }
        let sup = text(b, "supersedes");
        if let Some(a) = &mut self.refs {
            let rel = relationships(b);
            for (i, key) in keys.iter().enumerate() {
                let t = targets(rel, i);
                a.feed_key(id.value(i), *key, opt(sup, i), t.iter().flatten().flatten());
            }
        }
        if let Some(a) = &mut self.life {
            feed_lifecycle(a, b, keys);
        }
        for ((sp, required, _), audit) in plan.vectors.iter().zip(&mut self.vectors) {
            if let Some(v) = b
                .column_by_name(&sp.column)
                .and_then(|c| c.as_fixed_size_list_opt())
            {
                super::vectors::feed(audit, id, v, *required);
            }
        }
    }

    /// The results, in the plan's terms.
    fn finish(self, plan: &CurrentPlan) -> CurrentResults {
        let keys = self.ids.as_ref().map(IdAudit::keys);
        let refs = self
            .refs
            .zip(plan.refs.as_ref())
            .zip(keys)
            .map(|((a, spec), k)| a.finish_with_ids(spec, k));
        let life = self
            .life
            .zip(plan.life.as_ref())
            .zip(keys)
            .map(|((a, spec), k)| a.finish_with_ids(spec, k));
        CurrentResults {
            ids: self
                .ids
                .zip(plan.ids.as_ref())
                .map(|(a, spec)| a.finish(spec)),
            refs,
            life,
            vectors: self
                .vectors
                .into_iter()
                .zip(&plan.vectors)
                .map(|(a, (_, _, spec))| a.finish(spec))
                .collect(),
        }
    }
}

/// Feed one batch to the lifecycle rules.
fn feed_lifecycle(a: &mut LifecycleAudit, b: &RecordBatch, keys: &[u128]) {
    let id = b.column(0).as_string::<i32>();
    let (st, sup) = (text(b, "status"), text(b, "supersedes"));
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

/// The rows of one batch the version comparison reads: those that existed at the base
/// version (others' later appends are not compared), with content digests if asked.
fn after_rows(b: &RecordBatch, keys: &[u128], base: u64, content: bool) -> AfterRows {
    let id = b.column(0).as_string::<i32>();
    let mut rows = AfterRows::with_capacity(b.num_rows());
    let created = b
        .column_by_name(ROW_CREATED_AT_VERSION)
        .and_then(|c| c.as_primitive_opt::<UInt64Type>());
    let t = content.then(|| text(b, CONTENT)).flatten();
    for (i, key) in keys.iter().enumerate() {
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
    rows
}
