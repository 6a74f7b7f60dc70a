//! `normalize`: a space's vectors rescaled to unit length in place (one `DataReplacement`).

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, RecordBatch};
use memlane_core::space::normalize_flat;

use crate::error::{Result, StoreError};

use super::{Ctx, Staged, flat_values, vectors};

/// Stage `normalize` on `ctx.ds` into `staged`.
pub(super) async fn stage(ctx: &Ctx<'_>, staged: &mut Staged, space: &str) -> Result<()> {
    let sp = ctx
        .state
        .space(space)
        .cloned()
        .ok_or_else(|| StoreError::unknown_space(space, ctx.state))?;
    let mapper = Arc::new(
        move |b: &RecordBatch, _deleted: &[bool]| -> lance::Result<ArrayRef> {
            let (mut flat, d) = flat_values(b.column(0))?;
            normalize_flat(&mut flat, d);
            vectors(flat, d, b.column(0).nulls().cloned())
        },
    );
    let (op, rows) = ctx
        .replace_column(&sp.column, &[sp.column.as_str()], 8192, mapper)
        .await?;
    staged.op = op;
    staged.rows_written = rows;
    staged.written_vectors.push(sp.column.clone());
    Ok(())
}
