//! Comparing two versions: ids preserved and content unchanged, one scan per version.

use arrow::array::{Array, AsArray};
use futures::TryStreamExt;
use lance::Dataset;
use memlane_core::audit::VersionAudit;
use memlane_core::migration::InvariantSpec;
use memlane_core::report::InvariantResult;
use memlane_core::schema::{CONTENT, ID};

use crate::error::Result;

use super::{has, skipped};

/// Rows of `after` that existed at `base` (others' appends during the step are left out).
pub(crate) fn as_of(after: &Dataset, base: &Dataset) -> Option<String> {
    after
        .manifest()
        .uses_stable_row_ids()
        .then(|| format!("_row_created_at_version <= {}", base.version().version))
}

/// The ids (and, with `content`, the per-row content) of `base` fed to the audit, then
/// those of the rows of `after` that existed at `base`: one scan per version.
pub(crate) async fn compare_versions(
    base: &Dataset,
    after: &Dataset,
    content: bool,
) -> Result<VersionAudit> {
    let mut audit = scan_before(base, content).await?;
    let cols: &[&str] = if content { &[ID, CONTENT] } else { &[ID] };
    let mut s =
        crate::engine::scan::stream(after, Some(cols), as_of(after, base).as_deref()).await?;
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
pub(crate) async fn scan_before(base: &Dataset, content: bool) -> Result<VersionAudit> {
    let mut audit = VersionAudit::with_capacity(content, base.count_rows(None).await?);
    let cols: &[&str] = if content { &[ID, CONTENT] } else { &[ID] };
    let mut s = crate::engine::scan::stream(base, Some(cols), None).await?;
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
