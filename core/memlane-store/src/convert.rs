//! Conversion between Arrow and the core's plain types, and record validation.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, FixedSizeListArray, Float32Array, Float64Array,
    Int32Array, Int64Array, ListArray, RecordBatch, StringArray, TimestampMicrosecondArray,
    new_null_array,
};
use arrow::compute::{CastOptions, cast_with_options};
use arrow::datatypes::{DataType, Field, Fields, Schema, SchemaRef, TimeUnit};
use memlane_core::schema::{
    CONTENT, ID, MEMORY_KINDS, MEMORY_STATUSES, memory_fields, parse_timestamp_micros,
};
use memlane_core::{FieldDef, FieldType, Space, Value};

use crate::error::{Result, StoreError};

/// Field-metadata key carrying a space's identity on its vector column.
pub const SPACE_META: &str = "memlane:space";

/// Arrow type of a vector column.
pub(crate) fn vector_type(dim: usize) -> DataType {
    #[allow(clippy::cast_possible_wrap, clippy::cast_possible_truncation)]
    DataType::FixedSizeList(
        Arc::new(Field::new("item", DataType::Float32, true)),
        dim as i32,
    )
}

fn relationships_type() -> DataType {
    DataType::List(Arc::new(Field::new(
        "item",
        DataType::Struct(Fields::from(vec![
            Field::new("target", DataType::Utf8, false),
            Field::new("relation", DataType::Utf8, true),
            Field::new("weight", DataType::Float32, true),
        ])),
        true,
    )))
}

/// Arrow type of a core field type.
pub fn arrow_type(ty: &FieldType) -> DataType {
    match ty {
        FieldType::Bool => DataType::Boolean,
        FieldType::Int32 => DataType::Int32,
        FieldType::Int64 => DataType::Int64,
        FieldType::Float32 => DataType::Float32,
        FieldType::Float64 => DataType::Float64,
        FieldType::String | FieldType::Other(_) => DataType::Utf8,
        FieldType::Timestamp => DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
        FieldType::StringList => DataType::List(Arc::new(Field::new("item", DataType::Utf8, true))),
        FieldType::Vector(d) => vector_type(*d),
        FieldType::Relationships => relationships_type(),
    }
}

/// Core field type of an Arrow type.
pub(crate) fn core_type(dt: &DataType) -> FieldType {
    match dt {
        DataType::Boolean => FieldType::Bool,
        DataType::Int32 | DataType::Int16 | DataType::Int8 => FieldType::Int32,
        DataType::Int64 => FieldType::Int64,
        DataType::Float32 => FieldType::Float32,
        DataType::Float64 => FieldType::Float64,
        DataType::Utf8 | DataType::LargeUtf8 => FieldType::String,
        DataType::Timestamp(_, _) => FieldType::Timestamp,
        #[allow(clippy::cast_sign_loss)]
        DataType::FixedSizeList(f, d) if f.data_type() == &DataType::Float32 => {
            FieldType::Vector(*d as usize)
        }
        DataType::List(f) if f.data_type() == &DataType::Utf8 => FieldType::StringList,
        DataType::List(f) if matches!(f.data_type(), DataType::Struct(_)) => {
            FieldType::Relationships
        }
        other => FieldType::Other(other.to_string()),
    }
}

/// Metadata fields of `records` that a new store's base schema lacks (vector columns
/// of `spaces`, under their column or space name, excluded): what `create` infers.
pub(crate) fn extra_fields(records: &Schema, base: &Schema, spaces: &[Space]) -> Vec<FieldDef> {
    records
        .fields()
        .iter()
        .filter(|f| base.field_with_name(f.name()).is_err())
        .filter(|f| spaces.iter().all(|s| &s.name != f.name()))
        .map(|f| FieldDef {
            name: f.name().clone(),
            ty: core_type(f.data_type()),
            nullable: true,
        })
        .collect()
}

/// The core's view of an Arrow schema.
pub(crate) fn fields_of(schema: &Schema) -> Vec<FieldDef> {
    schema
        .fields()
        .iter()
        .map(|f| FieldDef {
            name: f.name().clone(),
            ty: core_type(f.data_type()),
            nullable: f.is_nullable(),
        })
        .collect()
}

/// The Arrow field of a space's vector column (identity in its metadata).
pub(crate) fn space_field(space: &Space) -> Field {
    let meta = HashMap::from([(
        SPACE_META.to_owned(),
        serde_json::to_string(space).unwrap_or_default(),
    )]);
    Field::new(&space.column, vector_type(space.dimension), true).with_metadata(meta)
}

/// The digest column of a space (see [`Space::digest_column`]).
pub(crate) fn digest_field(space: &Space) -> Field {
    Field::new(space.digest_column(), DataType::FixedSizeBinary(16), true)
}

/// The schema of a new store: `id`, `content`, the agent-memory fields (unless
/// `plain`), extra metadata fields and one vector column per space.
pub(crate) fn base_schema(plain: bool, extra: &[FieldDef], spaces: &[Space]) -> Schema {
    let mut fields = vec![
        Field::new(ID, DataType::Utf8, false),
        Field::new(CONTENT, DataType::Utf8, true),
    ];
    if !plain {
        fields.extend(
            memory_fields()
                .iter()
                .map(|f| Field::new(&f.name, arrow_type(&f.ty), true)),
        );
    }
    for f in extra {
        if fields.iter().all(|x| x.name() != &f.name) {
            fields.push(Field::new(&f.name, arrow_type(&f.ty), f.nullable));
        }
    }
    for s in spaces {
        fields.push(space_field(s));
        fields.push(digest_field(s));
    }
    Schema::new(fields)
}

/// An array of `n` copies of `value` (already coerced to `ty`).
pub(crate) fn constant_array(value: &Value, ty: &FieldType, n: usize) -> Result<ArrayRef> {
    let dt = arrow_type(ty);
    Ok(match (value, ty) {
        (Value::Null, _) => new_null_array(&dt, n),
        (Value::Bool(b), FieldType::Bool) => Arc::new(BooleanArray::from(vec![*b; n])),
        #[allow(clippy::cast_possible_truncation)]
        (Value::Int(i), FieldType::Int32) => Arc::new(Int32Array::from(vec![*i as i32; n])),
        (Value::Int(i), FieldType::Int64) => Arc::new(Int64Array::from(vec![*i; n])),
        #[allow(clippy::cast_possible_truncation)]
        (Value::Float(x), FieldType::Float32) => Arc::new(Float32Array::from(vec![*x as f32; n])),
        (Value::Float(x), FieldType::Float64) => Arc::new(Float64Array::from(vec![*x; n])),
        (Value::String(s), FieldType::String) => Arc::new(StringArray::from(vec![s.as_str(); n])),
        (Value::String(s), FieldType::Timestamp) => {
            let t = parse_timestamp_micros(s)
                .ok_or_else(|| StoreError::Input(format!("bad timestamp {s:?}")))?;
            Arc::new(TimestampMicrosecondArray::from(vec![t; n]).with_timezone("UTC"))
        }
        (Value::StringList(l), FieldType::StringList) => {
            let values = StringArray::from_iter_values(l.iter().cycle().take(l.len() * n));
            #[allow(clippy::cast_possible_truncation, clippy::cast_possible_wrap)]
            let offsets =
                arrow::buffer::OffsetBuffer::from_lengths(std::iter::repeat_n(l.len(), n));
            Arc::new(ListArray::new(
                Arc::new(Field::new("item", DataType::Utf8, true)),
                offsets,
                Arc::new(values),
                None,
            ))
        }
        _ => {
            return Err(StoreError::Input(format!(
                "value {value} does not fit type {ty}"
            )));
        }
    })
}

/// A batch's id column, read only where an error message needs a record's id (so
/// checking a batch allocates nothing per row).
#[derive(Clone, Copy)]
pub(crate) struct Ids<'a>(Option<&'a StringArray>);

impl<'a> Ids<'a> {
    /// The `id` column of `batch` (any row without one reads as `<row i>`).
    pub(crate) fn of(batch: &'a RecordBatch) -> Self {
        Self(
            batch
                .column_by_name(ID)
                .and_then(|c| c.as_string_opt::<i32>()),
        )
    }

    /// Row `i`'s id, borrowed (`<null>` or `<row>` where there is none).
    pub(crate) fn str(&self, i: usize) -> &'a str {
        match self.0 {
            Some(a) if a.is_null(i) => "<null>",
            Some(a) => a.value(i),
            None => "<row>",
        }
    }

    /// Row `i`'s id (null → `<null>`).
    pub(crate) fn get(&self, i: usize) -> String {
        match self.0 {
            Some(a) if a.is_null(i) => "<null>".to_owned(),
            Some(a) => a.value(i).to_owned(),
            None => format!("<row {i}>"),
        }
    }
}

/// Turn any list-of-numbers column into a `FixedSizeList<f32, dim>`, checking every
/// row's length (the error names the record and the space).
fn to_vectors(col: &ArrayRef, space: &Space, ids: Ids<'_>) -> Result<ArrayRef> {
    let dim = space.dimension;
    let (values, lengths, nulls): (ArrayRef, Vec<usize>, Option<arrow::buffer::NullBuffer>) =
        match col.data_type() {
            DataType::FixedSizeList(_, d) => {
                let a = col.as_fixed_size_list();
                #[allow(clippy::cast_sign_loss)]
                let d = *d as usize;
                (a.values().clone(), vec![d; a.len()], a.nulls().cloned())
            }
            DataType::List(_) => {
                let a = col.as_list::<i32>();
                #[allow(clippy::cast_sign_loss)]
                let lens = a
                    .offsets()
                    .windows(2)
                    .map(|w| (w[1] - w[0]) as usize)
                    .collect();
                let start = a.offsets()[0];
                let end = a.offsets()[a.len()];
                #[allow(clippy::cast_sign_loss)]
                let vals = a.values().slice(start as usize, (end - start) as usize);
                (vals, lens, a.nulls().cloned())
            }
            DataType::LargeList(_) => {
                let list = DataType::List(Arc::new(Field::new("item", DataType::Float32, true)));
                return to_vectors(
                    &cast_with_options(col, &list, &CastOptions::default())?,
                    space,
                    ids,
                );
            }
            DataType::Null => return Ok(new_null_array(&vector_type(dim), col.len())),
            other => {
                return Err(StoreError::Input(format!(
                    "column `{}` of space `{}` has type {other}; vectors must be lists of floats",
                    space.column, space.name
                )));
            }
        };
    for (i, len) in lengths.iter().enumerate() {
        let is_null = nulls.as_ref().is_some_and(|n| n.is_null(i));
        if !is_null && *len != dim {
            return Err(
                memlane_core::CoreError::Vector(memlane_core::VectorError::Dimension {
                    id: ids.get(i),
                    space: space.name.clone(),
                    expected: dim,
                    got: *len,
                })
                .into(),
            );
        }
    }
    if values.null_count() > 0 {
        let mut off = 0;
        for (i, len) in lengths.iter().enumerate() {
            let is_null = nulls.as_ref().is_some_and(|n| n.is_null(i));
            if !is_null && (off..off + len).any(|j| values.is_null(j)) {
                return Err(StoreError::Input(format!(
                    "record `{}`: vector for space `{}` has a null component; every component must be a number",
                    ids.get(i),
                    space.name
                )));
            }
            off += len;
        }
    }
    let floats = cast_with_options(&values, &DataType::Float32, &CastOptions::default())?;
    let floats = floats.as_primitive::<arrow::datatypes::Float32Type>();
    let flat: arrow::buffer::ScalarBuffer<f32> = if lengths.iter().all(|l| *l == dim) {
        // the common case (a fixed-size list of f32 already): the same buffer, no copy;
        // components under null rows are never read
        floats.values().clone()
    } else {
        // null rows of a List may hold no values: rebuild the flat buffer with zeros there
        let mut out = Vec::with_capacity(lengths.len() * dim);
        let mut off = 0;
        for len in &lengths {
            if *len == dim {
                out.extend_from_slice(&floats.values()[off..off + dim]);
            } else {
                out.extend(std::iter::repeat_n(0.0, dim));
            }
            off += len;
        }
        out.into()
    };
    #[allow(clippy::cast_possible_truncation, clippy::cast_possible_wrap)]
    let fsl = FixedSizeListArray::try_new(
        Arc::new(Field::new("item", DataType::Float32, true)),
        dim as i32,
        Arc::new(Float32Array::new(flat, None)),
        nulls,
    )?;
    Ok(Arc::new(fsl))
}

/// Cast and reorder `batch` into the store schema `target`: missing nullable columns
/// become nulls, vector lists become fixed-size lists of the space's dimension, and
/// unknown columns are refused with a hint.
pub fn conform(batch: &RecordBatch, target: &SchemaRef, spaces: &[Space]) -> Result<RecordBatch> {
    let ids = Ids::of(batch);
    // a space's vectors may come under its column name or the space name
    let known: HashSet<&str> = target
        .fields()
        .iter()
        .map(|f| f.name().as_str())
        .chain(spaces.iter().map(|s| s.name.as_str()))
        .collect();
    let unknown: Vec<&str> = batch
        .schema_ref()
        .fields()
        .iter()
        .map(|f| f.name().as_str())
        .filter(|n| !known.contains(n))
        .collect();
    if !unknown.is_empty() {
        return Err(StoreError::Input(format!(
            "field(s) {} are not in the store; add them with an `add_field` migration first (store fields: {})",
            unknown
                .iter()
                .map(|u| format!("`{u}`"))
                .collect::<Vec<_>>()
                .join(", "),
            known.iter().copied().collect::<Vec<_>>().join(", ")
        )));
    }
    let n = batch.num_rows();
    let mut cols = Vec::with_capacity(target.fields().len());
    for f in target.fields() {
        let by_space = spaces
            .iter()
            .find(|s| &s.column == f.name())
            .and_then(|s| batch.column_by_name(&s.name));
        let col = match batch.column_by_name(f.name()).or(by_space) {
            None if f.is_nullable() => new_null_array(f.data_type(), n),
            None => {
                return Err(StoreError::Input(format!(
                    "records lack the required field `{}`",
                    f.name()
                )));
            }
            Some(c) => {
                if let Some(space) = spaces.iter().find(|s| &s.column == f.name()) {
                    to_vectors(c, space, ids)?
                } else if c.data_type() == f.data_type() {
                    c.clone()
                } else if let DataType::Timestamp(_, _) = f.data_type()
                    && matches!(c.data_type(), DataType::Utf8 | DataType::LargeUtf8)
                {
                    let strs = cast_with_options(c, &DataType::Utf8, &CastOptions::default())?;
                    let mut out = Vec::with_capacity(n);
                    for (i, s) in strs.as_string::<i32>().iter().enumerate() {
                        out.push(match s {
                            None => None,
                            Some(s) => Some(parse_timestamp_micros(s).ok_or_else(|| {
                                StoreError::Input(format!(
                                    "record `{}`: `{}` = {s:?} is not an RFC 3339 timestamp (e.g. 2024-05-01T12:00:00Z)",
                                    ids.get(i),
                                    f.name()
                                ))
                            })?),
                        });
                    }
                    Arc::new(TimestampMicrosecondArray::from(out).with_timezone("UTC"))
                } else {
                    let opts = CastOptions {
                        safe: false,
                        ..Default::default()
                    };
                    cast_with_options(c, f.data_type(), &opts).map_err(|e| {
                        StoreError::Input(format!(
                            "field `{}`: cannot convert {} to the store's {}: {e}",
                            f.name(),
                            c.data_type(),
                            f.data_type()
                        ))
                    })?
                }
            }
        };
        if !f.is_nullable() && col.null_count() > 0 {
            let i = (0..n).find(|i| col.is_null(*i)).unwrap_or(0);
            return Err(StoreError::Input(format!(
                "record {} has a null `{}`, which is required",
                i,
                f.name()
            )));
        }
        cols.push(col);
    }
    Ok(RecordBatch::try_new(target.clone(), cols)?)
}

/// Check records before they are written: ids non-null and unique within the batch,
/// every vector valid for its space, memory enums valid; rows lacking a vector of
/// one of `required` spaces are refused.
pub fn check_batch(batch: &RecordBatch, spaces: &[Space], required: &[&str]) -> Result<()> {
    check_rows(batch, spaces, required)?;
    unique_ids(std::slice::from_ref(batch)).map(|_| ())
}

/// A fast non-cryptographic hasher for short keys such as record ids (the multiply-
/// rotate of rustc's FxHash, eight bytes at a time): sets of a million ids are built on
/// every add, where SipHash costs more than the rest of the check.
#[derive(Default, Clone, Copy)]
pub(crate) struct IdHasher(u64);

const ID_HASH_K: u64 = 0xf135_7aea_2e62_a9c5;

impl std::hash::Hasher for IdHasher {
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            let w = u64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]);
            self.0 = (self.0.rotate_left(26) ^ w).wrapping_mul(ID_HASH_K);
        }
        let mut tail = [0u8; 8];
        let rest = chunks.remainder();
        tail[..rest.len()].copy_from_slice(rest);
        self.0 = (self.0.rotate_left(26) ^ u64::from_le_bytes(tail) ^ (rest.len() as u64) << 59)
            .wrapping_mul(ID_HASH_K);
    }
    fn write_u8(&mut self, i: u8) {
        self.0 = (self.0.rotate_left(26) ^ u64::from(i)).wrapping_mul(ID_HASH_K);
    }
    fn finish(&self) -> u64 {
        // fold the high bits down: the table's probe uses both ends of the hash
        (self.0 ^ (self.0 >> 29))
            .wrapping_mul(ID_HASH_K)
            .rotate_left(26)
    }
}

/// A set of borrowed ids hashed with [`IdHasher`].
pub(crate) type IdSet<'a> = HashSet<&'a str, std::hash::BuildHasherDefault<IdHasher>>;

/// The ids of `batches` (already conformed), checked unique across all of them.
pub(crate) fn unique_ids(batches: &[RecordBatch]) -> Result<IdSet<'_>> {
    let n = batches.iter().map(RecordBatch::num_rows).sum();
    let mut seen = IdSet::with_capacity_and_hasher(n, Default::default());
    for b in batches {
        let Some(ids) = b.column_by_name(ID).and_then(|c| c.as_string_opt::<i32>()) else {
            return Err(StoreError::Input("records need an `id` field".into()));
        };
        if let Some(dup) = ids.iter().flatten().find(|id| !seen.insert(*id)) {
            return Err(StoreError::Input(format!(
                "id `{dup}` appears twice in the records; ids must be unique"
            )));
        }
    }
    Ok(seen)
}

/// [`check_batch`] but for the ids' uniqueness, which [`unique_ids`] checks across batches.
pub(crate) fn check_rows(batch: &RecordBatch, spaces: &[Space], required: &[&str]) -> Result<()> {
    let id_col = batch
        .column_by_name(ID)
        .ok_or_else(|| StoreError::Input("records need an `id` field".into()))?;
    if let Some(i) = (0..batch.num_rows()).find(|i| id_col.is_null(*i)) {
        return Err(StoreError::Input(format!(
            "record {i} has no `id`; every record needs a unique id"
        )));
    }
    let ids = Ids::of(batch);
    for space in spaces {
        let Some(col) = batch.column_by_name(&space.column) else {
            continue;
        };
        let fsl = col.as_fixed_size_list();
        let values = fsl
            .values()
            .as_primitive::<arrow::datatypes::Float32Type>()
            .values();
        let d = space.dimension;
        let must = required.contains(&space.name.as_str());
        for i in 0..batch.num_rows() {
            if fsl.is_null(i) {
                if must {
                    return Err(memlane_core::CoreError::Vector(
                        memlane_core::VectorError::Missing {
                            id: ids.get(i),
                            space: space.name.clone(),
                        },
                    )
                    .into());
                }
                continue;
            }
            let off = fsl.value_offset(i);
            #[allow(clippy::cast_sign_loss)]
            let off = off as usize;
            space
                .check_vector(ids.str(i), &values[off..off + d])
                .map_err(|e| StoreError::Core(e.into()))?;
        }
    }
    for (field, allowed) in [
        ("kind", &MEMORY_KINDS[..]),
        ("status", &MEMORY_STATUSES[..]),
    ] {
        if let Some(c) = batch
            .column_by_name(field)
            .and_then(|c| c.as_string_opt::<i32>())
        {
            for (i, v) in c.iter().enumerate() {
                if let Some(v) = v
                    && !allowed.contains(&v)
                {
                    return Err(StoreError::Input(format!(
                        "record `{}`: `{field}` = {v:?} is not one of {}",
                        ids.get(i),
                        allowed.join(", ")
                    )));
                }
            }
        }
    }
    Ok(())
}

/// Decode JSON objects (one record each) into a batch of the store schema. A vector may
/// be given under its column name or its space name.
pub(crate) fn json_to_batch(
    records: &[serde_json::Value],
    target: &SchemaRef,
    spaces: &[Space],
) -> Result<RecordBatch> {
    // Decode vectors as variable lists first so a wrong dimension gets a precise error.
    let decode_schema = Arc::new(Schema::new(
        target
            .fields()
            .iter()
            .map(|f| {
                if spaces.iter().any(|s| &s.column == f.name()) {
                    Field::new(
                        f.name(),
                        DataType::List(Arc::new(Field::new("item", DataType::Float64, true))),
                        true,
                    )
                } else {
                    Field::new(f.name(), f.data_type().clone(), true)
                }
            })
            .collect::<Vec<_>>(),
    ));
    let mut renamed = Vec::with_capacity(records.len());
    for (i, r) in records.iter().enumerate() {
        let serde_json::Value::Object(obj) = r else {
            return Err(StoreError::Input(format!(
                "record {i} is not a JSON object"
            )));
        };
        let mut obj = obj.clone();
        for s in spaces {
            if let Some(v) = obj.remove(&s.name) {
                obj.insert(s.column.clone(), v);
            }
        }
        if let Some(k) = obj.keys().find(|k| target.field_with_name(k).is_err()) {
            let id = obj
                .get(ID)
                .map_or_else(|| format!("#{i}"), ToString::to_string);
            return Err(StoreError::Input(format!(
                "record {id}: field `{k}` is not in the store; add it with an `add_field` migration first (store fields: {})",
                target
                    .fields()
                    .iter()
                    .map(|f| f.name().as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
        renamed.push(serde_json::Value::Object(obj));
    }
    let mut decoder = arrow::json::ReaderBuilder::new(decode_schema)
        .with_batch_size(renamed.len().max(1))
        .build_decoder()?;
    decoder
        .serialize(&renamed)
        .map_err(|e| StoreError::Input(format!("records do not fit the store schema: {e}")))?;
    let batch = decoder
        .flush()
        .map_err(|e| StoreError::Input(format!("records do not fit the store schema: {e}")))?
        .unwrap_or_else(|| RecordBatch::new_empty(target.clone()));
    conform(&batch, target, spaces)
}

/// Infer extra metadata fields from JSON records (keys beyond the known ones).
pub(crate) fn infer_fields(records: &[serde_json::Value], known: &Schema) -> Vec<FieldDef> {
    let mut out: Vec<FieldDef> = Vec::new();
    for r in records {
        let serde_json::Value::Object(obj) = r else {
            continue;
        };
        for (k, v) in obj {
            if known.field_with_name(k).is_ok() || out.iter().any(|f| &f.name == k) {
                continue;
            }
            let ty = match v {
                serde_json::Value::Bool(_) => FieldType::Bool,
                serde_json::Value::Number(n) if n.is_i64() => FieldType::Int64,
                serde_json::Value::Number(_) => FieldType::Float64,
                serde_json::Value::Array(a) if a.iter().all(serde_json::Value::is_string) => {
                    FieldType::StringList
                }
                serde_json::Value::Null => continue,
                _ => FieldType::String,
            };
            out.push(FieldDef {
                name: k.clone(),
                ty,
                nullable: true,
            });
        }
    }
    out
}

/// Agent memory: rows without `created_at` get the time of writing, rows without
/// `updated_at` their `created_at`.
pub(crate) fn fill_timestamps(batch: RecordBatch, now_micros: i64) -> Result<RecordBatch> {
    let schema = batch.schema();
    let (Ok(ci), Ok(ui)) = (schema.index_of("created_at"), schema.index_of("updated_at")) else {
        return Ok(batch);
    };
    let ts = |i: usize| {
        batch
            .column(i)
            .as_primitive_opt::<arrow::datatypes::TimestampMicrosecondType>()
            .cloned()
    };
    let (Some(c), Some(u)) = (ts(ci), ts(ui)) else {
        return Ok(batch);
    };
    if c.null_count() == 0 && u.null_count() == 0 {
        return Ok(batch);
    }
    let created: Vec<i64> = (0..c.len())
        .map(|i| if c.is_null(i) { now_micros } else { c.value(i) })
        .collect();
    let updated: Vec<i64> = (0..u.len())
        .map(|i| if u.is_null(i) { created[i] } else { u.value(i) })
        .collect();
    let mut cols = batch.columns().to_vec();
    cols[ci] = Arc::new(TimestampMicrosecondArray::from(created).with_timezone("UTC"));
    cols[ui] = Arc::new(TimestampMicrosecondArray::from(updated).with_timezone("UTC"));
    Ok(RecordBatch::try_new(schema, cols)?)
}
