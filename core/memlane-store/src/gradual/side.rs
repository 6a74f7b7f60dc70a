//! Side files: vectors embedded inside a fragment but not yet committed, saved under
//! `_memlane/backfill/` so a killed run re-embeds at most the batch in flight.

use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::{
    AsArray, FixedSizeBinaryArray, FixedSizeListArray, Float32Array, RecordBatch, StringArray,
};
use arrow::datatypes::{DataType, Field, Float32Type, Schema as ArrowSchema, SchemaRef};
use memlane_core::schema::ID;

use crate::error::Result;

use super::Gradual;
use super::fragments::Prepared;

impl Gradual<'_> {
    /// Side files of a fragment are `backfill/<prefix><uuid>.arrows`, one per save.
    pub(super) fn side_prefix(&self, frag: u64) -> String {
        format!(
            "{}/m{:04}-s{}-f{frag}.",
            crate::sidecar::BACKFILL,
            self.migration,
            self.step
        )
    }

    /// The side files a fragment has (unlistable reads as none: they only save work).
    pub(super) async fn side_files(&self, frag: u64) -> Vec<String> {
        let prefix = self.side_prefix(frag);
        let side = self.store.side_files();
        side.list(crate::sidecar::BACKFILL)
            .await
            .unwrap_or_default()
            .into_iter()
            .filter(|n| n.starts_with(&prefix))
            .collect()
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
    pub(super) async fn load_side(&self, frag: u64) -> HashMap<(String, [u8; 16]), Vec<f32>> {
        let mut out = HashMap::new();
        for name in self.side_files(frag).await {
            let Ok(Some(f)) = self.store.side_files().get(&name).await else {
                continue;
            };
            let Ok(reader) =
                arrow::ipc::reader::StreamReader::try_new(std::io::Cursor::new(f.bytes), None)
            else {
                continue;
            };
            // a torn tail (a file cut by hand) ends the stream; what came before is whole
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

    /// Save the vectors of `offsets` as a new side file of the fragment (one atomic
    /// put: a killed run leaves whole files or none).
    pub(super) async fn save_side(
        &self,
        offsets: &[usize],
        p: &Prepared,
        digest: &HashMap<usize, [u8; 16]>,
    ) -> Result<()> {
        if offsets.is_empty() {
            return Ok(());
        }
        let d = self.space.dimension;
        let ids: Vec<String> = offsets.iter().map(|o| p.ids.value(*o).to_owned()).collect();
        let mut vecs = Vec::with_capacity(offsets.len() * d);
        for o in offsets {
            vecs.extend_from_slice(&p.flat[o * d..(o + 1) * d]);
        }
        let b = self.side_batch(&ids, offsets.iter().map(|o| digest[o]).collect(), &vecs)?;
        let mut w = arrow::ipc::writer::StreamWriter::try_new(Vec::new(), &self.side_schema())?;
        w.write(&b)?;
        w.finish()?;
        let name = format!(
            "{}{}.arrows",
            self.side_prefix(p.frag_id),
            uuid::Uuid::new_v4()
        );
        self.store.side_files().put(&name, w.into_inner()?).await
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
