//! `delete_where`: the rows a SQL predicate selects, deleted.

use lance::dataset::DeleteBuilder;

use crate::error::{Result, StoreError};

use super::{Ctx, Staged};

/// Stage `delete_where` on `ctx.ds` into `staged`.
pub(super) async fn stage(ctx: &Ctx<'_>, staged: &mut Staged, predicate: &str) -> Result<()> {
    let d = DeleteBuilder::new(ctx.ds.clone(), predicate)
        .execute_uncommitted()
        .await
        .map_err(|e| {
            StoreError::Input(format!("delete_where predicate `{predicate}` failed: {e}"))
        })?;
    staged.op = d.transaction.operation;
    staged.rows_deleted = d.num_deleted_rows;
    Ok(())
}
