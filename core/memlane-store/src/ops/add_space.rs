//! `add_space`: the new space's vector and digest columns, all null (metadata only).

use std::sync::Arc;

use arrow::datatypes::{Schema as ArrowSchema, SchemaRef};

use crate::convert::space_field;
use crate::error::{Result, StoreError};

use super::{Ctx, Staged};

/// Stage `add_space` on `ctx.ds` into `staged`.
pub(super) async fn stage(ctx: &Ctx<'_>, staged: &mut Staged) -> Result<()> {
    let space = staged
        .state
        .spaces
        .last()
        .cloned()
        .ok_or_else(|| StoreError::Internal("add_space produced no space".into()))?;
    let space = space.validated()?;
    let out: SchemaRef = Arc::new(ArrowSchema::new(vec![
        space_field(&space),
        crate::convert::digest_field(&space),
    ]));
    staged.op = ctx.add_null_columns(out).await?;
    Ok(())
}
