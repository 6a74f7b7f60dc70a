//! Arrow across the boundary through the Arrow C stream interface: any object with
//! `__arrow_c_stream__` (pyarrow, polars, pandas via pyarrow, DuckDB, ...) comes in
//! without a copy, and record batches go out as a capsule pyarrow reads directly.

use std::ffi::CString;

use arrow::array::{RecordBatch, RecordBatchIterator, RecordBatchReader};
use arrow::ffi_stream::{ArrowArrayStreamReader, FFI_ArrowArrayStream};
use pyo3::prelude::*;
use pyo3::types::PyCapsule;

use crate::error::input;

const STREAM: &str = "arrow_array_stream";

/// Read every batch of an object that implements the Arrow PyCapsule stream interface.
pub(crate) fn batches_from(obj: &Bound<'_, PyAny>) -> PyResult<Vec<RecordBatch>> {
    if !obj.hasattr("__arrow_c_stream__")? {
        return Err(input(format!(
            "expected Arrow data (an object with `__arrow_c_stream__`: a pyarrow Table or RecordBatch, a polars DataFrame, ...), got {}",
            obj.get_type().name()?
        )));
    }
    let capsule = obj.call_method0("__arrow_c_stream__")?;
    let capsule = capsule.cast_into::<PyCapsule>().map_err(|_| {
        input("`__arrow_c_stream__` did not return a PyCapsule; upgrade the Arrow library")
    })?;
    let name = CString::new(STREAM).unwrap_or_default();
    let ptr = capsule
        .pointer_checked(Some(name.as_c_str()))
        .map_err(|_| input("the capsule is not an `arrow_array_stream`"))?;
    // SAFETY: the capsule is named `arrow_array_stream`, so by the Arrow PyCapsule
    // interface it points at a valid FFI_ArrowArrayStream owned by the capsule; `from_raw`
    // moves the stream out and leaves a released one behind, which the producer's
    // capsule destructor then ignores (the protocol's ownership transfer).
    #[allow(unsafe_code)]
    let reader =
        unsafe { ArrowArrayStreamReader::from_raw(ptr.as_ptr().cast::<FFI_ArrowArrayStream>()) }
            .map_err(|e| input(format!("cannot read the Arrow stream: {e}")))?;
    reader
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| input(format!("cannot read the Arrow stream: {e}")))
}

/// A capsule holding an Arrow C stream of `batches`, for `pyarrow.RecordBatchReader.from_stream`.
pub(crate) fn to_capsule<'py>(
    py: Python<'py>,
    schema: arrow::datatypes::SchemaRef,
    batches: Vec<RecordBatch>,
) -> PyResult<Bound<'py, PyCapsule>> {
    let reader: Box<dyn RecordBatchReader + Send> = Box::new(RecordBatchIterator::new(
        batches.into_iter().map(Ok),
        schema,
    ));
    let stream = FFI_ArrowArrayStream::new(reader);
    let name = CString::new(STREAM).unwrap_or_default();
    PyCapsule::new(py, stream, Some(name))
}
