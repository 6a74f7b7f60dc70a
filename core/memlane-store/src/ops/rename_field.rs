//! `rename_field`: a schema-only `Project`.

use lance::dataset::transaction::Operation;

use crate::error::Result;

use super::{Ctx, Staged};

/// Stage `rename_field` on `ctx.ds` into `staged`.
pub(super) async fn stage(ctx: &Ctx<'_>, staged: &mut Staged, from: &str, to: &str) -> Result<()> {
    let mut schema = ctx.ds.schema().clone();
    let id = schema.field_id(from)?;
    if let Some(f) = schema.mut_field_by_id(id) {
        to.clone_into(&mut f.name);
    }
    schema.validate()?;
    staged.op = Operation::Project {
        schema,
        preserves_nullability: true,
    };
    Ok(())
}
