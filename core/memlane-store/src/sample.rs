//! Samples for review outside the store: `memlane export-sample` writes some rows (spread
//! evenly over the store) with their metadata and vectors, the new spaces of pending
//! re-embeds embedded by the given embedders, and the store's snapshot, as one Arrow IPC
//! file. The browser preview reads it with Arrow JS; [`read_sample`] reads it back into
//! the [`memlane_core::Sample`] that [`memlane_core::review()`] takes, as `memlane review`
//! does.

use std::collections::{BTreeMap, HashMap};
use std::io::BufWriter;
use std::path::Path;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Float32Type, Schema};
use memlane_core::migration::{Migration, Step};
use memlane_core::review::{Sample, VectorColumn};
use memlane_core::schema::ID;
use serde::{Deserialize, Serialize};

use crate::embed::Embedder;
use crate::error::{Result, StoreError};
use crate::store::Store;
use crate::vectors::embed_checked;

/// Schema metadata key of the store snapshot (JSON of [`memlane_core::Snapshot`]).
pub const SNAPSHOT_META: &str = "memlane.snapshot";
/// Schema metadata key of the [`SampleInfo`] (JSON).
pub const SAMPLE_META: &str = "memlane.sample";

/// What an exported sample holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SampleInfo {
    /// Rows in the sample.
    pub rows: usize,
    /// Rows in the store.
    pub store_rows: u64,
    /// Store version sampled.
    pub version: u64,
    /// memlane version that wrote it.
    pub memlane: String,
    /// Vector columns, by space.
    pub spaces: BTreeMap<String, String>,
    /// New spaces embedded for the export: space -> embedder name.
    pub embedded: BTreeMap<String, String>,
    /// What the sample lacks, and how to add it.
    pub notes: Vec<String>,
}

impl std::fmt::Display for SampleInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "sample of {} rows out of {} (version {}); spaces: {}",
            self.rows,
            self.store_rows,
            self.version,
            self.spaces
                .keys()
                .map(|s| match self.embedded.get(s) {
                    Some(e) => format!("{s} (embedded now by `{e}`)"),
                    None => s.clone(),
                })
                .collect::<Vec<_>>()
                .join(", ")
        )?;
        for n in &self.notes {
            write!(f, "\n  note: {n}")?;
        }
        Ok(())
    }
}

fn io_err(path: &Path, e: std::io::Error) -> StoreError {
    StoreError::Io {
        path: path.display().to_string(),
        source: e,
    }
}

impl Store {
    /// Write up to `rows` records (spread evenly over the store) to `path` as an Arrow
    /// IPC file with every user column and the store's snapshot in the schema metadata.
    /// With `migrations`, each pending re-embed whose embedder is in `embedders` (keyed
    /// by the step's embedder name, as for `apply`) gets its new space's vectors for the
    /// sampled rows, so a reviewer sees the new model's neighbours before anything runs.
    /// The store is only read.
    pub async fn export_sample(
        &self,
        path: impl AsRef<Path>,
        rows: usize,
        migrations: Option<&[Migration]>,
        embedders: &HashMap<String, Arc<dyn Embedder>>,
    ) -> Result<SampleInfo> {
        let path = path.as_ref();
        if rows == 0 {
            return Err(StoreError::Input(
                "a sample needs at least one row; pass --rows N (e.g. 2000)".into(),
            ));
        }
        let cols = crate::export::user_columns(self);
        let refs: Vec<&str> = cols.iter().map(String::as_str).collect();
        let batches = crate::engine::scan::spread(self.dataset(), &refs, rows).await?;
        let Some(first) = batches.first() else {
            return Err(StoreError::Input(
                "the store has no records to sample; add some first".into(),
            ));
        };
        let mut batch = arrow::compute::concat_batches(&first.schema(), &batches)?;
        let snapshot = self.snapshot().await?;
        let mut info = SampleInfo {
            rows: batch.num_rows(),
            store_rows: snapshot.rows,
            version: snapshot.version,
            memlane: memlane_core::VERSION.to_owned(),
            spaces: BTreeMap::new(),
            embedded: BTreeMap::new(),
            notes: vec![],
        };
        for sp in &self.state().spaces {
            if batch.column_by_name(&sp.column).is_some() {
                info.spaces.insert(sp.name.clone(), sp.column.clone());
            }
        }
        if let Some(files) = migrations {
            let plan = self.plan(files).await?;
            for pm in &plan.migrations {
                let Some(m) = files.iter().find(|m| m.id == pm.id) else {
                    continue;
                };
                for s in &m.steps {
                    let Step::Reembed {
                        space,
                        embedder,
                        source,
                        ..
                    } = &s.step
                    else {
                        continue;
                    };
                    let Some(sp) = plan.spaces_after.iter().find(|x| x.name == *space) else {
                        continue;
                    };
                    if batch.column_by_name(&sp.column).is_some() {
                        continue;
                    }
                    let Some(e) = embedders.get(embedder) else {
                        info.notes.push(format!(
                            "{}: the new space `{space}` is not in the sample; pass --embedder {embedder}=SPEC (or embedders={{\"{embedder}\": fn}} in Python) to preview its compatibility",
                            m.file
                        ));
                        continue;
                    };
                    batch = embed_column(&batch, sp, embedder, e.as_ref(), source)?;
                    info.spaces.insert(sp.name.clone(), sp.column.clone());
                    info.embedded.insert(sp.name.clone(), embedder.clone());
                }
            }
        }
        let snap_json = serde_json::to_string(&snapshot)
            .map_err(|e| StoreError::Internal(format!("snapshot: {e}")))?;
        let info_json = serde_json::to_string(&info)
            .map_err(|e| StoreError::Internal(format!("sample info: {e}")))?;
        let mut meta = batch.schema().metadata().clone();
        meta.insert(SNAPSHOT_META.to_owned(), snap_json);
        meta.insert(SAMPLE_META.to_owned(), info_json);
        let schema = Arc::new(Schema::new_with_metadata(
            batch.schema().fields().clone(),
            meta,
        ));
        let batch = batch.with_schema(schema.clone())?;
        // write then rename: a killed export never leaves a torn sample under its name
        let tmp = path.with_extension("arrow.tmp");
        let f = std::fs::File::create(&tmp).map_err(|e| io_err(&tmp, e))?;
        let mut w = arrow::ipc::writer::FileWriter::try_new(BufWriter::new(f), &schema)?;
        w.write(&batch)?;
        w.finish()?;
        drop(w);
        std::fs::rename(&tmp, path).map_err(|e| io_err(path, e))?;
        Ok(info)
    }
}

/// `batch` with a new vector column for `sp`: its texts from `source` embedded by `e`
/// (null where the text is null).
fn embed_column(
    batch: &RecordBatch,
    sp: &memlane_core::Space,
    name: &str,
    e: &dyn Embedder,
    source: &str,
) -> Result<RecordBatch> {
    let text = batch
        .column_by_name(source)
        .and_then(|c| c.as_string_opt::<i32>())
        .ok_or_else(|| {
            StoreError::Input(format!(
                "the re-embed of `{}` reads text from `{source}`, which is not a text column of the store",
                sp.name
            ))
        })?;
    let ids = batch
        .column_by_name(ID)
        .and_then(|c| c.as_string_opt::<i32>())
        .ok_or_else(|| StoreError::Input("the store has no `id` column".into()))?;
    let rows: Vec<usize> = (0..batch.num_rows())
        .filter(|i| text.is_valid(*i))
        .collect();
    let d = sp.dimension;
    let mut flat = vec![0f32; batch.num_rows() * d];
    let bs = e.batch_size().max(1);
    for (k, chunk) in rows.chunks(bs).enumerate() {
        let texts: Vec<String> = chunk
            .iter()
            .map(|i| format!("{}{}", sp.passage_prefix, text.value(*i)))
            .collect();
        let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
        let chunk_ids: Vec<String> = chunk.iter().map(|i| ids.value(*i).to_owned()).collect();
        let v = embed_checked(name, e, &refs, sp, &chunk_ids, k)?;
        for (j, i) in chunk.iter().enumerate() {
            flat[i * d..(i + 1) * d].copy_from_slice(&v[j * d..(j + 1) * d]);
        }
    }
    let valid: Vec<bool> = (0..batch.num_rows()).map(|i| text.is_valid(i)).collect();
    let col = crate::vectors::vectors(flat, d, Some(valid.into()))?;
    let mut fields: Vec<Arc<Field>> = batch.schema().fields().iter().cloned().collect();
    fields.push(Arc::new(Field::new(
        &sp.column,
        col.data_type().clone(),
        true,
    )));
    let mut columns: Vec<ArrayRef> = batch.columns().to_vec();
    columns.push(col);
    Ok(RecordBatch::try_new(
        Arc::new(Schema::new(fields)),
        columns,
    )?)
}

/// Read a sample written by [`Store::export_sample`] (or any Arrow IPC file with an `id`
/// column and the [`SNAPSHOT_META`] key) into the input of [`memlane_core::review()`].
pub fn read_sample(path: impl AsRef<Path>) -> Result<(Sample, Option<SampleInfo>)> {
    let path = path.as_ref();
    let f = std::fs::File::open(path).map_err(|e| io_err(path, e))?;
    let reader = arrow::ipc::reader::FileReader::try_new(f, None).map_err(|e| {
        StoreError::Input(format!(
            "{} is not an Arrow IPC file ({e}); write one with `memlane export-sample`",
            path.display()
        ))
    })?;
    let schema = reader.schema();
    let meta = schema.metadata().clone();
    let batches = reader.collect::<std::result::Result<Vec<_>, _>>()?;
    let b = arrow::compute::concat_batches(&schema, &batches)?;
    let snapshot = meta.get(SNAPSHOT_META).ok_or_else(|| {
        StoreError::Input(format!(
            "{} has no `{SNAPSHOT_META}` metadata: it was not written by `memlane export-sample`",
            path.display()
        ))
    })?;
    let snapshot = serde_json::from_str(snapshot)
        .map_err(|e| StoreError::Input(format!("{}: snapshot: {e}", path.display())))?;
    let info = meta
        .get(SAMPLE_META)
        .and_then(|s| serde_json::from_str(s).ok());
    let ids: &StringArray = b
        .column_by_name(ID)
        .and_then(|c| c.as_string_opt::<i32>())
        .ok_or_else(|| StoreError::Input(format!("{} has no text `id` column", path.display())))?;
    let mut sample = Sample {
        snapshot,
        ids: (0..b.num_rows()).map(|i| ids.value(i).to_owned()).collect(),
        vectors: BTreeMap::new(),
        fields: BTreeMap::new(),
    };
    for (field, col) in schema.fields().iter().zip(b.columns()) {
        if field.name() == ID {
            continue;
        }
        if let DataType::FixedSizeList(item, dim) = field.data_type()
            && item.data_type() == &DataType::Float32
        {
            let l = col.as_fixed_size_list();
            let dim = usize::try_from(*dim).unwrap_or(0);
            let vals = l.values().as_primitive::<Float32Type>().values();
            let data = vals[l.offset() * dim..(l.offset() + l.len()) * dim].to_vec();
            let valid = if l.null_count() == 0 {
                vec![]
            } else {
                (0..l.len()).map(|i| l.is_valid(i)).collect()
            };
            sample
                .vectors
                .insert(field.name().clone(), VectorColumn { dim, data, valid });
        } else {
            let values = (0..b.num_rows())
                .map(|i| crate::checks::records::scalar_at(col.as_ref(), i).to_json())
                .collect();
            sample.fields.insert(field.name().clone(), values);
        }
    }
    Ok((sample, info))
}

/// Review the pending migrations of `folder` (with its `invariants.toml`) on the sample
/// file `sample`, `k` neighbours where a step does not say: what `memlane review` and
/// Python's `memlane.review` run.
pub fn review_sample(
    sample: impl AsRef<Path>,
    folder: impl AsRef<Path>,
    k: usize,
) -> Result<memlane_core::Review> {
    let (s, _) = read_sample(sample)?;
    let folder = folder.as_ref();
    let files = crate::readers::read_folder(folder)?;
    let opts = memlane_core::ReviewOptions {
        k,
        invariants: crate::readers::read_invariants(folder)?,
        ..memlane_core::ReviewOptions::default()
    };
    Ok(memlane_core::review(&files, &s, &opts)?)
}
