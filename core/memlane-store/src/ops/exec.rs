//! The executors every op builds on: columns added by a mapper (`Merge`), all-null
//! columns (metadata only), one column rewritten in place (`DataReplacement`), progress.

use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::datatypes::{Schema as ArrowSchema, SchemaRef};
use futures::StreamExt;
use lance::dataset::transaction::Operation;
use lance::dataset::{BatchUDF, NewColumnTransform};
use lance::datatypes::Schema as LanceSchema;

use crate::error::Result;

use super::{ColumnMapper, Ctx, Mapper, lance_err};

impl Ctx<'_> {
    pub(super) fn tick(&self, rows: u64) {
        if let Some((f, p)) = &self.progress {
            let mut p = p.clone();
            p.done = rows.min(p.total);
            f(&p);
        }
    }

    pub(super) fn counter(&self) -> impl Fn(u64) + Send + Sync + 'static {
        let done = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let prog = self.progress.clone();
        move |n: u64| {
            let d = done.fetch_add(n, std::sync::atomic::Ordering::Relaxed) + n;
            if let Some((f, p)) = &prog {
                let mut p = p.clone();
                p.done = d.min(p.total);
                f(&p);
            }
        }
    }

    /// Add columns computed by `mapper` from `read` columns: one `Merge`.
    pub(super) async fn add_columns(
        &self,
        read: &[&str],
        output: SchemaRef,
        mapper: Mapper,
    ) -> Result<(Operation, u64)> {
        let mut fragments = Vec::new();
        let mut schema = None;
        let mut rows = 0u64;
        let count = self.counter();
        let count = Arc::new(count);
        for frag in self.ds.get_fragments() {
            rows += frag.physical_rows().await? as u64;
            let (m, c) = (mapper.clone(), count.clone());
            let udf = BatchUDF {
                mapper: Box::new(move |b: &RecordBatch| {
                    let out = m(b)?;
                    c(b.num_rows() as u64);
                    Ok(out)
                }),
                output_schema: output.clone(),
                result_checkpoint: None,
            };
            let read_cols = Some(read.iter().map(|s| (*s).to_owned()).collect());
            let (meta, s) = frag
                .add_columns(NewColumnTransform::BatchUDF(udf), read_cols, Some(8192))
                .await?;
            fragments.push(meta);
            schema = Some(s);
        }
        let schema = match schema {
            Some(s) => s,
            None => self.merged_schema(&output)?,
        };
        let preserves_nullability = output.fields().iter().all(|f| f.is_nullable());
        Ok((
            Operation::Merge {
                fragments,
                schema,
                preserves_nullability,
            },
            rows,
        ))
    }

    pub(super) fn merged_schema(&self, output: &SchemaRef) -> Result<LanceSchema> {
        let mut s = self.ds.schema().merge(output.as_ref())?;
        s.set_field_id(self.ds.manifest().max_field_id().into());
        Ok(s)
    }

    /// Add nullable, all-null columns: metadata only.
    pub(super) async fn add_null_columns(&self, output: SchemaRef) -> Result<Operation> {
        let mut fragments = Vec::new();
        let mut schema = None;
        for frag in self.ds.get_fragments() {
            let (meta, s) = frag
                .add_columns(NewColumnTransform::AllNulls(output.clone()), None, None)
                .await?;
            fragments.push(meta);
            schema = Some(s);
        }
        let schema = match schema {
            Some(s) => s,
            None => self.merged_schema(&output)?,
        };
        Ok(Operation::Merge {
            fragments,
            schema,
            preserves_nullability: true,
        })
    }

    /// Rewrite one existing column for every physical row: one `DataReplacement`.
    /// The mapper gets the `read` columns and the fragment's deletion mask.
    pub(super) async fn replace_column(
        &self,
        column: &str,
        read: &[&str],
        batch_size: u32,
        mapper: ColumnMapper,
    ) -> Result<(Operation, u64)> {
        let target = self.ds.schema().project(&[column])?;
        let out_schema: SchemaRef = Arc::new(ArrowSchema::from(&target));
        let read_schema = self.ds.schema().project(read)?;
        let mut groups = Vec::new();
        let mut rows = 0u64;
        let count = Arc::new(self.counter());
        for frag in self.ds.get_fragments() {
            let n = frag.physical_rows().await? as u64;
            rows += n;
            let dv = frag.get_deletion_vector().await?;
            let (m, out, c) = (mapper.clone(), out_schema.clone(), count.clone());
            let mut offset = 0u32;
            let stream = frag
                .read_physical_slice(0..n, &read_schema, batch_size)
                .await?
                .then(|f| f)
                .map(move |r| {
                    let b = r?;
                    #[allow(clippy::cast_possible_truncation)]
                    let len = b.num_rows() as u32;
                    let deleted: Vec<bool> = (offset..offset + len)
                        .map(|i| dv.as_ref().is_some_and(|d| d.contains(i)))
                        .collect();
                    offset += len;
                    let col = m(&b, &deleted)?;
                    c(u64::from(len));
                    RecordBatch::try_new(out.clone(), vec![col]).map_err(lance_err)
                });
            groups.push(frag.write_columns(stream, &target).await?);
        }
        Ok((
            Operation::DataReplacement {
                replacements: groups,
            },
            rows,
        ))
    }
}
