//! Side files: vectors embedded inside a fragment but not yet committed, saved under
//! `_memlane/backfill/` so a killed run re-embeds at most the batch in flight.

use std::collections::HashMap;
use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;

use arrow::array::{
    AsArray, FixedSizeBinaryArray, FixedSizeListArray, Float32Array, RecordBatch, StringArray,
};
use arrow::datatypes::{DataType, Field, Float32Type, Schema as ArrowSchema, SchemaRef};
use memlane_core::schema::ID;

use crate::error::{Result, StoreError};

use super::Gradual;
use super::fragments::{Prepared, SideWriter};

impl Gradual<'_> {
    pub(super) fn side_dir(&self) -> PathBuf {
        crate::sidecar::path(self.store.uri(), crate::sidecar::BACKFILL)
    }

    /// Side files of a fragment are `<prefix>.<run>.arrows`, one per run.
    pub(super) fn side_prefix(&self, frag: u64) -> String {
        format!("m{:04}-s{}-f{frag}.", self.migration, self.step)
    }

    pub(super) fn side_files(&self, frag: u64) -> Vec<PathBuf> {
        let prefix = self.side_prefix(frag);
        std::fs::read_dir(self.side_dir())
            .map(|rd| {
                rd.filter_map(std::result::Result::ok)
                    .filter(|e| e.file_name().to_string_lossy().starts_with(&prefix))
                    .map(|e| e.path())
                    .collect()
            })
            .unwrap_or_default()
    }

    pub(super) fn side_schema(&self) -> SchemaRef {
        Arc::new(ArrowSchema::new(vec![
            Field::new(ID, DataType::Utf8, false),
            Field::new("digest", DataType::FixedSizeBinary(16), false),
            Field::new(
                "vector",
                crate::convert::vector_type(self.space.dimension),
                false,
            ),
        ]))
    }

    /// Vectors a killed run already computed for this fragment, by (id, digest).
    pub(super) fn load_side(&self, frag: u64) -> HashMap<(String, [u8; 16]), Vec<f32>> {
        let mut out = HashMap::new();
        for path in self.side_files(frag) {
            let Ok(f) = std::fs::File::open(path) else {
                continue;
            };
            let Ok(reader) =
                arrow::ipc::reader::StreamReader::try_new(std::io::BufReader::new(f), None)
            else {
                continue;
            };
            // a torn tail (killed mid-write) ends the stream; what came before is whole
            for b in reader.map_while(std::result::Result::ok) {
                let ids = b.column(0).as_string::<i32>();
                let dg = b.column(1).as_fixed_size_binary();
                let v = b.column(2).as_fixed_size_list();
                for i in 0..b.num_rows() {
                    let mut d = [0u8; 16];
                    d.copy_from_slice(dg.value(i));
                    let vec = v.value(i).as_primitive::<Float32Type>().values().to_vec();
                    // checked when embedded; checked again, as it comes from disk
                    if self.space.check_vector(ids.value(i), &vec).is_ok() {
                        out.insert((ids.value(i).to_owned(), d), vec);
                    }
                }
            }
        }
        out
    }

    /// Append the vectors of `offsets` to the fragment's side file and flush it.
    pub(super) fn save_side(
        &self,
        side: &mut Option<SideWriter>,
        path: &std::path::Path,
        offsets: &[usize],
        p: &Prepared,
        digest: &HashMap<usize, [u8; 16]>,
    ) -> Result<()> {
        if offsets.is_empty() {
            return Ok(());
        }
        let io = |e: std::io::Error| StoreError::Io {
            path: path.display().to_string(),
            source: e,
        };
        let w = match side {
            Some(w) => w,
            None => {
                let f = std::fs::File::create(path).map_err(io)?;
                side.insert(arrow::ipc::writer::StreamWriter::try_new(
                    std::io::BufWriter::new(f),
                    &self.side_schema(),
                )?)
            }
        };
        let d = self.space.dimension;
        let ids: Vec<String> = offsets.iter().map(|o| p.ids.value(*o).to_owned()).collect();
        let mut vecs = Vec::with_capacity(offsets.len() * d);
        for o in offsets {
            vecs.extend_from_slice(&p.flat[o * d..(o + 1) * d]);
        }
        let b = self.side_batch(&ids, offsets.iter().map(|o| digest[o]).collect(), &vecs)?;
        w.write(&b)?;
        w.flush()?;
        w.get_mut().flush().map_err(io)?;
        Ok(())
    }

    pub(super) fn side_batch(
        &self,
        ids: &[String],
        digests: Vec<[u8; 16]>,
        flat: &[f32],
    ) -> Result<RecordBatch> {
        #[allow(clippy::cast_possible_truncation, clippy::cast_possible_wrap)]
        let v = FixedSizeListArray::try_new(
            Arc::new(Field::new("item", DataType::Float32, true)),
            self.space.dimension as i32,
            Arc::new(Float32Array::from(flat.to_vec())),
            None,
        )?;
        let dg = FixedSizeBinaryArray::try_from_iter(digests.iter())?;
        Ok(RecordBatch::try_new(
            self.side_schema(),
            vec![
                Arc::new(StringArray::from_iter_values(ids)),
                Arc::new(dg),
                Arc::new(v),
            ],
        )?)
    }
}
