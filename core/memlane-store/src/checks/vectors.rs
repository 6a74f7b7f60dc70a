//! Vector checks: every live row's vector of a space valid (and present where
//! required), fed batch by batch.

use arrow::array::{Array, AsArray};
use futures::TryStreamExt;
use lance::Dataset;
use memlane_core::invariant::VectorAudit;
use memlane_core::migration::InvariantSpec;
use memlane_core::report::InvariantResult;
use memlane_core::schema::ID;

use crate::error::Result;

/// Every live row's vector of `space` valid (and present when `required`).
pub(crate) async fn audit(
    ds: &Dataset,
    space: &memlane_core::Space,
    required: bool,
    spec: &InvariantSpec,
    filter: Option<&str>,
) -> Result<InvariantResult> {
    let mut audit = VectorAudit::new(space.clone()).with_norm_range(spec.min_norm, spec.max_norm);
    let mut stream =
        crate::engine::scan::stream(ds, Some(&[ID, space.column.as_str()]), filter).await?;
    while let Some(b) = stream.try_next().await? {
        feed(
            &mut audit,
            b.column(0).as_string::<i32>(),
            b.column(1).as_fixed_size_list(),
            required,
        );
    }
    Ok(audit.finish(spec))
}

/// Feed one batch's vectors (with their ids) to `audit`.
pub(crate) fn feed(
    audit: &mut VectorAudit,
    ids: &arrow::array::StringArray,
    v: &arrow::array::FixedSizeListArray,
    required: bool,
) {
    let vals = v
        .values()
        .as_primitive::<arrow::datatypes::Float32Type>()
        .values();
    #[allow(clippy::cast_sign_loss)]
    let d = v.value_length() as usize;
    for i in 0..v.len() {
        #[allow(clippy::cast_sign_loss)]
        let off = v.value_offset(i) as usize;
        audit.feed(
            ids.value(i),
            v.is_valid(i).then(|| &vals[off..off + d]),
            required,
        );
    }
}
