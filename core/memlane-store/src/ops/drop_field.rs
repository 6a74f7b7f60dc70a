//! `drop_field`: a schema-only `Project` (the data stays in older versions).

use lance::dataset::transaction::Operation;

use crate::error::Result;

use super::{Ctx, Staged};

/// Stage `drop_field` on `ctx.ds` into `staged`.
pub(super) async fn stage(ctx: &Ctx<'_>, staged: &mut Staged, field: &str) -> Result<()> {
    let schema = ctx.ds.plan_drop_columns(&[field])?;
    staged.op = Operation::Project {
        schema,
        preserves_nullability: true,
    };
    Ok(())
}
