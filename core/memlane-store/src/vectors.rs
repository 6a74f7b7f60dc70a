//! Vectors as the ops and writers produce them: flat values, checked embedding
//! output, missing vectors filled, digest columns.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, FixedSizeListArray, Float32Array, RecordBatch};
use arrow::datatypes::{DataType, Field, Float32Type};
use memlane_core::Space;

use crate::convert::Ids;
use crate::embed::Embedder;
use crate::error::{Result, StoreError};

/// The flat f32 values of a vector column (nulls as zeros).
pub(crate) fn flat_values(col: &ArrayRef) -> Result<(Vec<f32>, usize), lance::Error> {
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
        &space.name,
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
    let out = e.embed(texts).map_err(|err| {
        // a failure inside the batch (one request of many) names that request's first record
        let at = err
            .downcast_ref::<crate::embed::EmbedFailure>()
            .and_then(|f| ids.get(f.offset))
            .unwrap_or(&first);
        fail(at.clone(), err.to_string())
    })?;
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

/// An error inside a Lance column transform.
pub(crate) fn lance_err(e: impl std::fmt::Display) -> lance::Error {
    lance::Error::invalid_input(e.to_string())
}
