//! `truncate`: a new space from the first dimensions of another, vectors checked as they
//! are produced (one `Merge`).

use std::sync::Arc;

use arrow::array::{Array, RecordBatch};
use arrow::datatypes::{Schema as ArrowSchema, SchemaRef};
use memlane_core::space::truncate_flat;

use crate::convert::space_field;
use crate::error::{Result, StoreError};

use super::{Ctx, Mapper, Staged, Tally, flat_values, lance_err, vectors};

/// Stage `truncate` on `ctx.ds` into `staged`.
pub(super) async fn stage(ctx: &Ctx<'_>, staged: &mut Staged, from: &str) -> Result<()> {
    let src = ctx
        .state
        .space(from)
        .cloned()
        .ok_or_else(|| StoreError::unknown_space(from, ctx.state))?;
    let new = staged
        .state
        .spaces
        .last()
        .cloned()
        .ok_or_else(|| StoreError::Internal("truncate produced no space".into()))?;
    let out: SchemaRef = Arc::new(ArrowSchema::new(vec![space_field(&new)]));
    let (out2, d_in, d_out) = (out.clone(), src.dimension, new.dimension);
    // vectors are checked as they are produced (no read-back of the new column
    // when all are valid); a failure falls back to the checked read of what landed
    let tally = Arc::new(std::sync::Mutex::new(Tally::default()));
    let (t2, check_space) = (tally.clone(), new.clone());
    let mapper: Mapper = Arc::new(move |b: &RecordBatch| {
        let (flat, d) = flat_values(b.column(0))?;
        debug_assert_eq!(d, d_in);
        let mut out = Vec::new();
        truncate_flat(&flat, d, d_out, &mut out);
        let nulls = b.column(0).nulls().cloned();
        let mut t = Tally::default();
        for (i, v) in out.chunks_exact(d_out).enumerate() {
            if nulls.as_ref().is_some_and(|n| n.is_null(i)) {
                t.nulls += 1;
            } else if check_space.check_vector("", v).is_err() {
                t.invalid += 1;
            } else {
                t.valid += 1;
            }
        }
        if let Ok(mut g) = t2.lock() {
            g.add(&t);
        }
        let col = vectors(out, d_out, nulls)?;
        RecordBatch::try_new(out2.clone(), vec![col]).map_err(lance_err)
    });
    let (op, rows) = ctx.add_columns(&[src.column.as_str()], out, mapper).await?;
    staged.op = op;
    staged.rows_written = rows;
    staged.written_vectors.push(new.column.clone());
    if let Ok(t) = tally.lock() {
        staged
            .checked_as_written
            .push((new.column.clone(), t.clone()));
    }
    Ok(())
}
