//! Step executors: each turns one migration step into one uncommitted Lance
//! operation (data files written, nothing committed) plus the state after it.

use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, FixedSizeListArray, Float32Array, RecordBatch};
use arrow::compute::{CastOptions, cast_with_options, is_not_null};
use arrow::datatypes::{DataType, Field, Float32Type, Schema as ArrowSchema, SchemaRef};
use futures::{StreamExt, TryStreamExt};
use lance::Dataset;
use lance::dataset::transaction::Operation;
use lance::dataset::{BatchUDF, DeleteBuilder, NewColumnTransform};
use lance::datatypes::Schema as LanceSchema;
use memlane_core::schema::ID;
use memlane_core::space::{normalize_flat, truncate_flat};
use memlane_core::{FieldType, Space, Step, StoreState, Value};

use crate::convert::{Ids, arrow_type, constant_array, core_type, space_field};
use crate::embed::Embedder;
use crate::error::{Result, StoreError};

/// Progress of a running step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Progress {
    /// Migration id.
    pub migration: u32,
    /// 0-based step.
    pub step: usize,
    /// Steps in the migration.
    pub steps: usize,
    /// Op name.
    pub op: String,
    /// Rows processed so far.
    pub done: u64,
    /// Rows to process.
    pub total: u64,
}

/// Progress callback.
pub type ProgressFn = Arc<dyn Fn(&Progress) + Send + Sync>;

/// A step ready to commit.
pub(crate) struct Staged {
    pub(crate) op: Operation,
    pub(crate) state: StoreState,
    pub(crate) rows_written: u64,
    pub(crate) rows_deleted: u64,
    /// Vector columns whose values this step wrote.
    pub(crate) written_vectors: Vec<String>,
    /// Vector columns a dry run only sampled (not checked as a whole).
    pub(crate) sampled: Vec<String>,
    /// For an online re-embed: the version its last backfill pass read; the written
    /// space is checked on the rows as of that version.
    pub(crate) settled: Option<u64>,
    /// Vector columns checked as they were produced (physical rows, deleted included).
    pub(crate) checked_as_written: Vec<(String, Tally)>,
}

/// Outcome of checking vectors as they are produced.
#[derive(Debug, Clone, Default)]
pub(crate) struct Tally {
    pub(crate) valid: u64,
    pub(crate) invalid: u64,
    pub(crate) nulls: u64,
}

impl Tally {
    fn add(&mut self, o: &Tally) {
        self.valid += o.valid;
        self.invalid += o.invalid;
        self.nulls += o.nulls;
    }
}

/// Inputs of an executor.
pub(crate) struct Ctx<'a> {
    pub(crate) ds: &'a Arc<Dataset>,
    pub(crate) state: &'a StoreState,
    pub(crate) progress: Option<(ProgressFn, Progress)>,
}

type Mapper = Arc<dyn Fn(&RecordBatch) -> lance::Result<RecordBatch> + Send + Sync>;
/// Computes a column's new values from the read columns and the deletion mask.
type ColumnMapper = Arc<dyn Fn(&RecordBatch, &[bool]) -> lance::Result<ArrayRef> + Send + Sync>;

fn lance_err(e: impl std::fmt::Display) -> lance::Error {
    lance::Error::invalid_input(e.to_string())
}

impl Ctx<'_> {
    fn tick(&self, rows: u64) {
        if let Some((f, p)) = &self.progress {
            let mut p = p.clone();
            p.done = rows.min(p.total);
            f(&p);
        }
    }

    fn counter(&self) -> impl Fn(u64) + Send + Sync + 'static {
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
    async fn add_columns(
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

    fn merged_schema(&self, output: &SchemaRef) -> Result<LanceSchema> {
        let mut s = self.ds.schema().merge(output.as_ref())?;
        s.set_field_id(self.ds.manifest().max_field_id().into());
        Ok(s)
    }

    /// Add nullable, all-null columns: metadata only.
    async fn add_null_columns(&self, output: SchemaRef) -> Result<Operation> {
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
    async fn replace_column(
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

/// The flat f32 values of a vector column (nulls as zeros).
fn flat_values(col: &ArrayRef) -> Result<(Vec<f32>, usize), lance::Error> {
    let fsl = col
        .as_fixed_size_list_opt()
        .ok_or_else(|| lance_err("not a vector column"))?;
    #[allow(clippy::cast_sign_loss)]
    let d = fsl.value_length() as usize;
    let start = fsl.offset() * d;
    let vals = fsl.values().as_primitive::<Float32Type>();
    Ok((vals.values()[start..start + fsl.len() * d].to_vec(), d))
}

/// A vector column of `dim`-d rows from flat values (`nulls`: rows without a vector).
pub(crate) fn vectors(
    flat: Vec<f32>,
    dim: usize,
    nulls: Option<arrow::buffer::NullBuffer>,
) -> lance::Result<ArrayRef> {
    #[allow(clippy::cast_possible_truncation, clippy::cast_possible_wrap)]
    let a = FixedSizeListArray::try_new(
        Arc::new(Field::new("item", DataType::Float32, true)),
        dim as i32,
        Arc::new(Float32Array::from(flat)),
        nulls,
    )
    .map_err(lance_err)?;
    Ok(Arc::new(a))
}

/// Fill rows lacking a vector of `space` (with non-null content) by embedding their
/// content (the caller sets the digests, see [`with_digests`]).
pub(crate) fn fill_missing_vectors(
    batch: &RecordBatch,
    space: &Space,
    e: &dyn Embedder,
) -> Result<(RecordBatch, u64)> {
    let Some(col) = batch.column_by_name(&space.column) else {
        return Ok((batch.clone(), 0));
    };
    let Some(content) = batch.column_by_name(memlane_core::schema::CONTENT) else {
        return Ok((batch.clone(), 0));
    };
    let content = content.as_string::<i32>();
    let todo: Vec<usize> = (0..batch.num_rows())
        .filter(|i| col.is_null(*i) && content.is_valid(*i))
        .collect();
    if todo.is_empty() {
        return Ok((batch.clone(), 0));
    }
    let ids = Ids::of(batch);
    let texts: Vec<String> = todo
        .iter()
        .map(|i| format!("{}{}", space.passage_prefix, content.value(*i)))
        .collect();
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let got = embed_checked(
        "(add)",
        e,
        &refs,
        space,
        &todo.iter().map(|i| ids.get(*i)).collect::<Vec<_>>(),
        0,
    )?;
    let (mut flat, d) = flat_values(col)?;
    let mut valid: Vec<bool> = (0..batch.num_rows()).map(|i| col.is_valid(i)).collect();
    for (k, i) in todo.iter().enumerate() {
        flat[i * d..(i + 1) * d].copy_from_slice(&got[k * d..(k + 1) * d]);
        valid[*i] = true;
    }
    let new_col = vectors(flat, d, Some(arrow::buffer::NullBuffer::from(valid)))?;
    let mut cols = batch.columns().to_vec();
    let idx = batch.schema().index_of(&space.column)?;
    cols[idx] = new_col;
    let b = RecordBatch::try_new(batch.schema(), cols)?;
    Ok((b, todo.len() as u64))
}

/// Set a space's digest column for rows that have both a vector and content: the
/// vector is taken to be the embedding of that content (see [`Space::digest_column`]).
pub(crate) fn with_digests(batch: &RecordBatch, space: &Space) -> Result<RecordBatch> {
    let (Ok(di), Some(col), Some(content)) = (
        batch.schema().index_of(&space.digest_column()),
        batch.column_by_name(&space.column),
        batch.column_by_name(memlane_core::schema::CONTENT),
    ) else {
        return Ok(batch.clone());
    };
    let content = content.as_string::<i32>();
    let n = batch.num_rows();
    let mut bytes = vec![0u8; n * 16];
    let mut valid = Vec::with_capacity(n);
    for (i, out) in bytes.chunks_exact_mut(16).enumerate() {
        let ok = col.is_valid(i) && content.is_valid(i);
        if ok {
            out.copy_from_slice(&space.passage_digest(content.value(i)));
        }
        valid.push(ok);
    }
    let nulls = arrow::buffer::NullBuffer::from(valid);
    let arr = arrow::array::FixedSizeBinaryArray::try_new(
        16,
        arrow::buffer::Buffer::from_vec(bytes),
        (nulls.null_count() > 0).then_some(nulls),
    )?;
    let mut cols = batch.columns().to_vec();
    cols[di] = Arc::new(arr);
    Ok(RecordBatch::try_new(batch.schema(), cols)?)
}

/// Call an embedder and check its output: the right count and dimension, finite,
/// non-zero for cosine spaces. Errors name the batch and the first bad record.
pub(crate) fn embed_checked(
    name: &str,
    e: &dyn Embedder,
    texts: &[&str],
    space: &Space,
    ids: &[String],
    batch: usize,
) -> Result<Vec<f32>> {
    let first = ids.first().cloned().unwrap_or_default();
    let fail = |first_id: String, message: String| StoreError::Embedder {
        name: name.to_owned(),
        batch,
        first_id,
        message,
    };
    let out = e
        .embed(texts)
        .map_err(|err| fail(first.clone(), err.to_string()))?;
    let d = space.dimension;
    if out.len() != texts.len() * d {
        return Err(fail(
            first,
            format!(
                "returned {} floats for {} texts; expected {} vectors of dimension {d} for space `{}`",
                out.len(),
                texts.len(),
                texts.len(),
                space.name
            ),
        ));
    }
    for (id, v) in ids.iter().zip(out.chunks_exact(d)) {
        if let Err(err) = space.check_vector(id, v) {
            return Err(fail(id.clone(), err.to_string()));
        }
    }
    Ok(out)
}

/// Run one step on `ctx.ds`, returning the uncommitted operation and the new state.
pub(crate) async fn stage(ctx: &Ctx<'_>, step: &Step) -> Result<Staged> {
    let state = step.evolve_state(ctx.state);
    let total = ctx.ds.count_rows(None).await? as u64;
    ctx.tick(0);
    let mut staged = Staged {
        op: Operation::Append { fragments: vec![] },
        state,
        rows_written: 0,
        rows_deleted: 0,
        written_vectors: vec![],
        sampled: vec![],
        settled: None,
        checked_as_written: vec![],
    };
    match step {
        Step::AddField {
            field,
            ty,
            default,
            nullable,
        } => {
            let t = FieldType::parse(ty)
                .ok_or_else(|| StoreError::Input(format!("unknown type `{ty}`")))?;
            let value = default
                .as_ref()
                .map(|d| d.coerce(field, &t))
                .transpose()?
                .unwrap_or(Value::Null);
            let out: SchemaRef = Arc::new(ArrowSchema::new(vec![Field::new(
                field,
                arrow_type(&t),
                *nullable,
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
        }
        Step::RenameField { from, to } => {
            let mut schema = ctx.ds.schema().clone();
            let id = schema.field_id(from)?;
            if let Some(f) = schema.mut_field_by_id(id) {
                f.name.clone_from(to);
            }
            schema.validate()?;
            staged.op = Operation::Project {
                schema,
                preserves_nullability: true,
            };
        }
        Step::DropField { field } => {
            let schema = ctx.ds.plan_drop_columns(&[field.as_str()])?;
            staged.op = Operation::Project {
                schema,
                preserves_nullability: true,
            };
        }
        Step::CastField { field, to } => {
            let t = FieldType::parse(to)
                .ok_or_else(|| StoreError::Input(format!("unknown type `{to}`")))?;
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
            let (op, rows) = ctx.add_columns(&[field.as_str()], out, mapper).await?;
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
                f.name.clone_from(field);
            }
            schema.validate()?;
            // the old column's own files now hold no field of the schema: drop them
            let ids: std::collections::HashSet<i32> =
                schema.fields_pre_order().map(|f| f.id).collect();
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
        }
        Step::Backfill {
            field,
            value,
            copy_from,
            only_null,
        } => {
            let f = ctx
                .ds
                .schema()
                .field(field)
                .ok_or_else(|| StoreError::Input(format!("no field `{field}`")))?;
            let dt = f.data_type();
            let ty = core_type(&dt);
            let mut read = vec![field.as_str()];
            if let Some(c) = copy_from {
                read.push(c.as_str());
            }
            let value = value.as_ref().map(|v| v.coerce(field, &ty)).transpose()?;
            let only_null = *only_null;
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
                        arrow::compute::kernels::zip::zip(&keep, b.column(0), &fill)
                            .map_err(lance_err)
                    } else {
                        Ok(fill)
                    }
                },
            );
            let (op, rows) = ctx.replace_column(field, &read, 8192, mapper).await?;
            staged.op = op;
            staged.rows_written = rows;
        }
        Step::AddSpace { .. } => {
            let space = staged
                .state
                .spaces
                .last()
                .cloned()
                .ok_or_else(|| StoreError::Input("add_space produced no space".into()))?;
            let space = space.validated()?;
            let out: SchemaRef = Arc::new(ArrowSchema::new(vec![
                space_field(&space),
                crate::convert::digest_field(&space),
            ]));
            staged.op = ctx.add_null_columns(out).await?;
        }
        Step::Reembed { space, .. } => {
            // the vectors were written by the gradual backfill (crate::gradual) in
            // checkpoint commits; the step's own commit switches the state
            let sp = ctx
                .state
                .space(space)
                .cloned()
                .ok_or_else(|| StoreError::unknown_space(space, ctx.state))?;
            staged.op = state_only_op(&staged.state);
            staged.written_vectors.push(sp.column);
        }
        Step::Truncate { from, .. } => {
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
        }
        Step::Normalize { space } => {
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
        }
        Step::DeleteWhere { predicate } => {
            let d = DeleteBuilder::new(ctx.ds.clone(), predicate.as_str())
                .execute_uncommitted()
                .await
                .map_err(|e| {
                    StoreError::Input(format!("delete_where predicate `{predicate}` failed: {e}"))
                })?;
            staged.op = d.transaction.operation;
            staged.rows_deleted = d.num_deleted_rows;
        }
        Step::Dedupe { by, order_by } => {
            let (op, n) = dedupe(ctx.ds, by, order_by).await?;
            staged.op = op;
            staged.rows_deleted = n;
        }
        Step::SetActiveSpace { .. } => {
            staged.op = state_only_op(&staged.state);
        }
    }
    ctx.tick(total);
    Ok(staged)
}

/// A commit that changes no data (state only): mirrors the active space in the schema metadata.
pub(crate) fn state_only_op(state: &StoreState) -> Operation {
    Operation::UpdateConfig {
        config_updates: None,
        table_metadata_updates: None,
        schema_metadata_updates: Some(lance::dataset::transaction::UpdateMap {
            update_entries: vec![
                (
                    "memlane.active_space",
                    state.active_space.as_deref().unwrap_or(""),
                )
                    .into(),
            ],
            replace: false,
        }),
        field_metadata_updates: HashMap::new(),
    }
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
            .ok_or_else(|| StoreError::Input("no _rowaddr".into()))?;
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
    let mut by_frag: HashMap<u64, Vec<u32>> = HashMap::new();
    for a in losers {
        #[allow(clippy::cast_possible_truncation)]
        by_frag
            .entry(a >> 32)
            .or_default()
            .push((a & 0xffff_ffff) as u32);
    }
    let mut updated = Vec::new();
    let mut deleted_ids = Vec::new();
    for frag in ds.get_fragments() {
        let id = frag.id() as u64;
        if let Some(offsets) = by_frag.remove(&id) {
            match frag.extend_deletions(offsets).await? {
                Some(f) => updated.push(f.metadata().clone()),
                None => deleted_ids.push(id),
            }
        }
    }
    Ok((
        Operation::Delete {
            updated_fragments: updated,
            deleted_fragment_ids: deleted_ids,
            predicate: format!("memlane dedupe by {by}"),
        },
        n,
    ))
}
