//! Shared fixtures of memlane's benchmarks: deterministic vector stores (and, re-exported,
//! the store-free helpers of `memlane-benchkit`).

pub use memlane_benchkit::*;

use std::sync::Arc;

use arrow::array::{
    FixedSizeListArray, Float32Array, RecordBatch, RecordBatchIterator, StringArray,
};
use arrow::datatypes::{DataType, Field, Schema};

/// `n` unit vectors of `dim` in batches of `batch`, with ids `r{i}`, as Arrow batches
/// with the columns of a plain memlane store (`id`, `content`, `vec_<space>`).
pub fn vector_batches(
    n: usize,
    dim: usize,
    batch: usize,
    space: &str,
    seed: u64,
) -> (Arc<Schema>, Vec<RecordBatch>) {
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Utf8, false),
        Field::new("content", DataType::Utf8, true),
        Field::new(
            format!("vec_{space}"),
            memlane_store::arrow_type(&memlane_core::FieldType::Vector(dim)),
            true,
        ),
    ]));
    let mut rng = Rng(seed);
    let mut out = Vec::new();
    let mut start = 0;
    while start < n {
        let m = batch.min(n - start);
        let ids = StringArray::from_iter_values((start..start + m).map(|i| format!("r{i}")));
        let content =
            StringArray::from_iter_values((start..start + m).map(|i| format!("record {i}")));
        let mut flat = Vec::with_capacity(m * dim);
        for _ in 0..m {
            let s = flat.len();
            flat.extend((0..dim).map(|_| rng.unit()));
            memlane_core::space::normalize_in_place(&mut flat[s..]);
        }
        #[allow(clippy::cast_possible_wrap, clippy::cast_possible_truncation)]
        let v = FixedSizeListArray::try_new(
            Arc::new(Field::new("item", DataType::Float32, true)),
            dim as i32,
            Arc::new(Float32Array::from(flat)),
            None,
        )
        .expect("vectors");
        out.push(
            RecordBatch::try_new(
                schema.clone(),
                vec![Arc::new(ids), Arc::new(content), Arc::new(v)],
            )
            .expect("batch"),
        );
        start += m;
    }
    (schema, out)
}

/// Reader over generated batches.
pub fn reader(
    schema: Arc<Schema>,
    batches: Vec<RecordBatch>,
) -> RecordBatchIterator<std::vec::IntoIter<Result<RecordBatch, arrow::error::ArrowError>>> {
    RecordBatchIterator::new(
        batches.into_iter().map(Ok).collect::<Vec<_>>().into_iter(),
        schema,
    )
}

/// Peak resident set of this process in KiB (Linux `VmHWM`).
pub fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

/// An embedder that returns the same unit vector of `dim` for every text, in batches of
/// 1,024: a re-embed through it measures everything but the model.
pub struct ZeroCost(pub usize);

impl memlane_store::Embedder for ZeroCost {
    fn embed(&self, texts: &[&str]) -> Result<Vec<f32>, memlane_store::EmbedError> {
        #[allow(clippy::cast_precision_loss)]
        let x = 1.0 / (self.0 as f32).sqrt();
        Ok(vec![x; texts.len() * self.0])
    }
    fn batch_size(&self) -> usize {
        1024
    }
}
