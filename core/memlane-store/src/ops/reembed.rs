//! `reembed`: the vectors were written by the gradual backfill (the gradual module) in
//! checkpoint commits; the step's own commit switches the state.

use crate::error::{Result, StoreError};

use super::{Ctx, Staged, state_only_op};

/// Stage `reembed` on `ctx.ds` into `staged`.
pub(super) async fn stage(ctx: &Ctx<'_>, staged: &mut Staged, space: &str) -> Result<()> {
    // the vectors were written by the gradual backfill (the gradual module) in
    // checkpoint commits; the step's own commit switches the state
    let sp = ctx
        .state
        .space(space)
        .cloned()
        .ok_or_else(|| StoreError::unknown_space(space, ctx.state))?;
    staged.op = state_only_op(&staged.state);
    staged.written_vectors.push(sp.column);
    Ok(())
}
