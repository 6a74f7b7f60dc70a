//! `add_field`: a new column, all null (metadata only) or filled with its default (one
//! `Merge`).

use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::datatypes::{Field, Schema as ArrowSchema, SchemaRef};
use memlane_core::schema::ID;
use memlane_core::{FieldType, Value};

use crate::convert::{arrow_type, constant_array};
use crate::error::{Result, StoreError};

use super::{Ctx, Mapper, Staged, lance_err};

/// Stage `add_field` on `ctx.ds` into `staged`.
pub(super) async fn stage(
    ctx: &Ctx<'_>,
    staged: &mut Staged,
    field: &str,
    ty: &str,
    default: Option<&Value>,
    nullable: bool,
) -> Result<()> {
    let t =
        FieldType::parse(ty).ok_or_else(|| StoreError::Input(format!("unknown type `{ty}`")))?;
    let value = default
        .as_ref()
        .map(|d| d.coerce(field, &t))
        .transpose()?
        .unwrap_or(Value::Null);
    let out: SchemaRef = Arc::new(ArrowSchema::new(vec![Field::new(
        field,
        arrow_type(&t),
        nullable,
    )]));
    if value == Value::Null {
        staged.op = ctx.add_null_columns(out).await?;
    } else {
        let out2 = out.clone();
        let mapper: Mapper = Arc::new(move |b: &RecordBatch| {
            let col = constant_array(&value, &t, b.num_rows()).map_err(lance_err)?;
            RecordBatch::try_new(out2.clone(), vec![col]).map_err(lance_err)
        });
        let (op, rows) = ctx.add_columns(&[ID], out, mapper).await?;
        staged.op = op;
        staged.rows_written = rows;
    }
    Ok(())
}
