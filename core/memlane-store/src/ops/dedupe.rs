//! `dedupe`: all but the newest record of each group, deleted.

use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::DataType;
use futures::TryStreamExt;
use lance::Dataset;
use lance::dataset::transaction::Operation;

use crate::error::{Result, StoreError};

use super::{Ctx, Staged};

/// Stage `dedupe` on `ctx.ds` into `staged`.
pub(super) async fn stage(
    ctx: &Ctx<'_>,
    staged: &mut Staged,
    by: &str,
    order_by: &str,
) -> Result<()> {
    let (op, n) = dedupe(ctx.ds, by, order_by).await?;
    staged.op = op;
    staged.rows_deleted = n;
    Ok(())
}

/// Delete all but the newest record of each `by` group (largest `order_by`, then the
/// last written).
async fn dedupe(ds: &Arc<Dataset>, by: &str, order_by: &str) -> Result<(Operation, u64)> {
    let mut s = ds.scan();
    s.project(&[by, order_by])?;
    s.with_row_address();
    let batches: Vec<RecordBatch> = s.try_into_stream().await?.try_collect().await?;
    // key -> (order key, row address) of the current winner
    let mut best: HashMap<String, (Option<String>, u64)> = HashMap::new();
    let mut losers: Vec<u64> = Vec::new();
    for b in &batches {
        let keys = arrow::compute::cast(b.column(0), &DataType::Utf8)?;
        let keys = keys.as_string::<i32>();
        let order = b.column(1);
        let addr = b
            .column_by_name("_rowaddr")
            .ok_or_else(|| StoreError::Internal("no _rowaddr".into()))?;
        let addr = addr.as_primitive::<arrow::datatypes::UInt64Type>();
        for i in 0..b.num_rows() {
            let Some(k) = keys.is_valid(i).then(|| keys.value(i)) else {
                continue;
            };
            let o = if order.is_valid(i) {
                Some(arrow::util::display::array_value_to_string(order, i)?)
            } else {
                None
            };
            let a = addr.value(i);
            match best.get_mut(k) {
                None => {
                    best.insert(k.to_owned(), (o, a));
                }
                Some(cur) => {
                    // ISO timestamps and zero-padded numbers compare as text; compare
                    // numbers numerically when both parse
                    let newer = match (&o, &cur.0) {
                        (Some(x), Some(y)) => match (x.parse::<f64>(), y.parse::<f64>()) {
                            (Ok(p), Ok(q)) => p >= q,
                            _ => x >= y,
                        },
                        (Some(_), None) | (None, None) => true,
                        (None, Some(_)) => false,
                    };
                    if newer {
                        losers.push(cur.1);
                        *cur = (o, a);
                    } else {
                        losers.push(a);
                    }
                }
            }
        }
    }
    let n = losers.len() as u64;
    let op =
        crate::engine::scan::delete_rows(ds, losers, format!("memlane dedupe by {by}")).await?;
    Ok((op, n))
}
