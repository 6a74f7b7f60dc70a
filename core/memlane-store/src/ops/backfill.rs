//! `backfill`: one column rewritten for every physical row, from a constant or another
//! column, optionally only where null (one `DataReplacement`).

use std::sync::Arc;

use arrow::array::{ArrayRef, RecordBatch};
use arrow::compute::{CastOptions, cast_with_options, is_not_null};
use memlane_core::Value;

use crate::convert::{constant_array, core_type};
use crate::error::{Result, StoreError};

use super::{Ctx, Staged, lance_err};

/// Stage `backfill` on `ctx.ds` into `staged`.
pub(super) async fn stage(
    ctx: &Ctx<'_>,
    staged: &mut Staged,
    field: &str,
    value: Option<&Value>,
    copy_from: Option<&str>,
    only_null: bool,
) -> Result<()> {
    let f = ctx
        .ds
        .schema()
        .field(field)
        .ok_or_else(|| StoreError::Input(format!("no field `{field}`")))?;
    let dt = f.data_type();
    let ty = core_type(&dt);
    let mut read = vec![field];
    if let Some(c) = copy_from {
        read.push(c);
    }
    let value = value.as_ref().map(|v| v.coerce(field, &ty)).transpose()?;

    let mapper = Arc::new(
        move |b: &RecordBatch, _deleted: &[bool]| -> lance::Result<ArrayRef> {
            let n = b.num_rows();
            let fill: ArrayRef = match &value {
                Some(v) => constant_array(v, &ty, n).map_err(lance_err)?,
                None => cast_with_options(
                    b.column(1),
                    &dt,
                    &CastOptions {
                        safe: false,
                        ..Default::default()
                    },
                )
                .map_err(lance_err)?,
            };
            if only_null {
                let keep = is_not_null(b.column(0)).map_err(lance_err)?;
                arrow::compute::kernels::zip::zip(&keep, b.column(0), &fill).map_err(lance_err)
            } else {
                Ok(fill)
            }
        },
    );
    let (op, rows) = ctx.replace_column(field, &read, 8192, mapper).await?;
    staged.op = op;
    staged.rows_written = rows;
    Ok(())
}
