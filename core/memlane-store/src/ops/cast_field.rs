//! `cast_field`: the cast column written beside the old one, then swapped in under its name
//! at its position (one `Merge`).

use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::compute::{CastOptions, cast_with_options};
use arrow::datatypes::{Field, Schema as ArrowSchema, SchemaRef};
use lance::dataset::transaction::Operation;
use memlane_core::FieldType;

use crate::convert::arrow_type;
use crate::error::{Result, StoreError};

use super::{Ctx, Mapper, Staged, lance_err};

/// Stage `cast_field` on `ctx.ds` into `staged`.
pub(super) async fn stage(ctx: &Ctx<'_>, staged: &mut Staged, field: &str, to: &str) -> Result<()> {
    let t =
        FieldType::parse(to).ok_or_else(|| StoreError::Input(format!("unknown type `{to}`")))?;
    let tmp = format!("__memlane_cast_{field}");
    let src = ctx
        .ds
        .schema()
        .field(field)
        .ok_or_else(|| StoreError::Input(format!("no field `{field}`")))?;
    let nullable = src.nullable;
    let out: SchemaRef = Arc::new(ArrowSchema::new(vec![Field::new(
        &tmp,
        arrow_type(&t),
        nullable,
    )]));
    let (out2, dt) = (out.clone(), arrow_type(&t));
    let mapper: Mapper = Arc::new(move |b: &RecordBatch| {
        let opts = CastOptions {
            safe: false,
            ..Default::default()
        };
        let col = cast_with_options(b.column(0), &dt, &opts).map_err(lance_err)?;
        RecordBatch::try_new(out2.clone(), vec![col]).map_err(lance_err)
    });
    let (op, rows) = ctx.add_columns(&[field], out, mapper).await?;
    let Operation::Merge {
        fragments,
        schema,
        preserves_nullability,
    } = op
    else {
        unreachable!("add_columns returns Merge")
    };
    // swap the new column in under the old name, keeping the old column's position
    let old_id = schema.field_id(field)?;
    let new_id = schema.field_id(&tmp)?;
    let mut ids: Vec<i32> = schema
        .fields
        .iter()
        .map(|f| f.id)
        .filter(|i| *i != new_id)
        .collect();
    if let Some(pos) = ids.iter().position(|i| *i == old_id) {
        ids[pos] = new_id;
    }
    let mut schema = schema.project_by_ids(&ids, true);
    let reordered: Vec<lance::datatypes::Field> = ids
        .iter()
        .filter_map(|id| schema.fields.iter().find(|f| f.id == *id).cloned())
        .collect();
    schema.fields = reordered;
    if let Some(f) = schema.mut_field_by_id(new_id) {
        field.clone_into(&mut f.name);
    }
    schema.validate()?;
    // the old column's own files now hold no field of the schema: drop them
    let ids: std::collections::HashSet<i32> = schema.fields_pre_order().map(|f| f.id).collect();
    let mut fragments = fragments;
    for f in &mut fragments {
        f.files
            .retain(|d| d.fields.iter().any(|id| ids.contains(id)));
    }
    staged.op = Operation::Merge {
        fragments,
        schema,
        preserves_nullability,
    };
    staged.rows_written = rows;
    Ok(())
}
