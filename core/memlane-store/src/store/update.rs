//! `update`: set fields of the records a predicate matches (LanceDB's
//! `update(where, values)`), as one upsert — so it is sealed, retried on a conflict
//! and all-or-nothing like every write. A changed `content` drops the records' vectors,
//! which every space with an embedder (given, or remembered) computes again.

use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::{RecordBatch, UInt32Array};
use arrow::datatypes::Schema;
use memlane_core::schema::{CONTENT, ID};

use crate::convert;
use crate::embed::Embedder;
use crate::error::{Result, StoreError};

use super::{Store, UpsertReport};

impl Store {
    /// Set the fields of the records matching `filter` (SQL over the store's fields) to
    /// `values` (a JSON value per field: numbers, strings, booleans, RFC 3339 times,
    /// lists, null). Vectors and `id` are not set this way (upsert records instead).
    /// When `content` changes, the records' vectors are dropped and embedded again
    /// with `embedders` (by space) or the spaces' remembered embedders; the active
    /// space must get one, or nothing is written. Returns the upsert's report
    /// (`updated` = records changed).
    pub async fn update(
        &mut self,
        filter: &str,
        values: &serde_json::Map<String, serde_json::Value>,
        embedders: &HashMap<String, Arc<dyn Embedder>>,
    ) -> Result<UpsertReport> {
        self.refresh().await?;
        self.check_update(values)?;
        let vectors: Vec<String> = self.state.spaces.iter().map(|s| s.column.clone()).collect();
        let content_changes = values.contains_key(CONTENT);
        let fields = self.user_fields();
        let keep: Vec<&str> = fields
            .iter()
            .filter(|c| !(content_changes && vectors.contains(c)))
            .map(String::as_str)
            .collect();
        let batches = self.scan(Some(&keep), Some(filter)).await?;
        if batches.iter().all(|b| b.num_rows() == 0) {
            return Ok(UpsertReport {
                inserted: 0,
                updated: 0,
                embedded: HashMap::new(),
                version: self.version(),
            });
        }
        let fills = self.update_values(values)?;
        let mut out = Vec::with_capacity(batches.len());
        for b in batches.into_iter().filter(|b| b.num_rows() > 0) {
            out.push(with_values(&b, &fills)?);
        }
        self.upsert_batches(out, embedders).await
    }

    /// Refuse what `update` cannot set: nothing, an unknown field, a vector, the id.
    fn check_update(&self, values: &serde_json::Map<String, serde_json::Value>) -> Result<()> {
        if values.is_empty() {
            return Err(StoreError::Input(
                "update needs at least one field to set: values {\"field\": value, ...}".into(),
            ));
        }
        let fields = self.user_fields();
        for k in values.keys() {
            if let Some(s) = self
                .state
                .spaces
                .iter()
                .find(|s| s.name == *k || s.column == *k)
            {
                return Err(StoreError::Input(format!(
                    "update sets fields, not vectors: `{k}` holds space `{}`'s vectors; upsert the records with their vectors instead",
                    s.name
                )));
            }
            if k == ID {
                return Err(StoreError::Input(
                    "update cannot change a record's `id` (it is the key); upsert the record under the new id and delete the old one".into(),
                ));
            }
            if !fields.contains(k) {
                return Err(StoreError::Input(format!(
                    "update: the store has no field `{k}`; its fields are {}",
                    fields.join(", ")
                )));
            }
        }
        Ok(())
    }

    /// Each value of `values` as a one-row array of its field's type; a value that does
    /// not fit names the field, its type and the value.
    fn update_values(
        &self,
        values: &serde_json::Map<String, serde_json::Value>,
    ) -> Result<Vec<(String, arrow::array::ArrayRef)>> {
        let schema = self.schema();
        let mut out = Vec::with_capacity(values.len());
        for (k, v) in values {
            let field = schema.field_with_name(k)?.clone();
            let ty = field.data_type().clone();
            let target = Arc::new(Schema::new(vec![field]));
            let mut rec = serde_json::Map::new();
            rec.insert(k.clone(), v.clone());
            let one = convert::json_to_batch(&[serde_json::Value::Object(rec)], &target, &[])
                .ok()
                .filter(|b| b.num_rows() == 1 && (v.is_null() || b.column(0).null_count() == 0))
                .ok_or_else(|| {
                    StoreError::Input(format!(
                        "update: {v} does not fit field `{k}` ({ty}); give a value of that type"
                    ))
                })?;
            out.push((k.clone(), one.column(0).clone()));
        }
        Ok(out)
    }
}

/// `b` with each field of `fills` set to its one value on every row.
fn with_values(b: &RecordBatch, fills: &[(String, arrow::array::ArrayRef)]) -> Result<RecordBatch> {
    let idx = UInt32Array::from(vec![0u32; b.num_rows()]);
    let mut cols = b.columns().to_vec();
    for (k, one) in fills {
        let i = b.schema().index_of(k)?;
        cols[i] = arrow::compute::take(one.as_ref(), &idx, None)?;
    }
    RecordBatch::try_new(b.schema(), cols).map_err(|e| {
        StoreError::Input(format!(
            "update: the values do not fit the records ({e}); a field that cannot be null needs a value"
        ))
    })
}
