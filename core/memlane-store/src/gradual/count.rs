//! Counting the rows a pass must embed (all rows, or those written since a version),
//! and the dry run's sample.

use std::collections::HashMap;

use arrow::array::{Array, AsArray};
use futures::TryStreamExt;
use lance::Dataset;
use memlane_core::Space;
use memlane_core::schema::ID;

use crate::embed::Embedder;
use crate::error::Result;
use crate::vectors::embed_checked;

use super::Gradual;

/// Rows that need embedding, counted by one pass.
pub(super) struct Count {
    /// Live rows.
    pub(super) total: u64,
    /// Rows that need embedding, per fragment.
    pub(super) per_frag: HashMap<u64, u64>,
    /// Rows without source text among those read.
    pub(super) without_text: u64,
}

impl Count {
    pub(super) fn remaining(&self) -> u64 {
        self.per_frag.values().sum()
    }
}

impl Gradual<'_> {
    /// Count the rows that need embedding, per fragment: all rows, or (`since`) only
    /// those created or updated after a version (Lance's row version tracking; our own
    /// column replacements do not count as updates). Falls back to all rows when the
    /// dataset cannot answer the delta (no stable row ids).
    pub(super) async fn count_todo(&self, ds: &Dataset, since: Option<u64>) -> Result<Count> {
        if let Some(v) = since {
            let filter =
                format!("_row_created_at_version > {v} OR _row_last_updated_at_version > {v}");
            if let Ok(mut c) = self.scan_todo(ds, Some(&filter)).await {
                c.total = ds.count_rows(None).await? as u64;
                return Ok(c);
            }
        }
        self.scan_todo(ds, None).await
    }

    pub(super) async fn scan_todo(&self, ds: &Dataset, filter: Option<&str>) -> Result<Count> {
        let mut s = ds.scan();
        s.project(&[self.source.as_str(), self.space.digest_column().as_str()])?;
        s.with_row_address();
        if let Some(f) = filter {
            s.filter(f)?;
        }
        let mut c = Count {
            total: 0,
            per_frag: HashMap::new(),
            without_text: 0,
        };
        let mut stream = s.try_into_stream().await?;
        while let Some(b) = stream.try_next().await? {
            let text = b.column(0).as_string::<i32>();
            let dg = b.column(1).as_fixed_size_binary();
            let addr = b
                .column_by_name("_rowaddr")
                .map(|c| c.as_primitive::<arrow::datatypes::UInt64Type>().clone());
            for i in 0..b.num_rows() {
                c.total += 1;
                if text.is_null(i) {
                    c.without_text += 1;
                    continue;
                }
                let want = self.space.passage_digest(text.value(i));
                if dg.is_null(i) || dg.value(i) != want {
                    let frag = addr.as_ref().map_or(0, |a| a.value(i) >> 32);
                    *c.per_frag.entry(frag).or_default() += 1;
                }
            }
        }
        Ok(c)
    }
}

/// Dry run of a re-embed: count the rows to embed and try the embedder on up to 64 of
/// them (output checked); commits nothing. Returns the rows that would be embedded.
pub(crate) async fn sample(
    ds: &Dataset,
    space: &Space,
    name: &str,
    e: &dyn Embedder,
    source: &str,
) -> Result<u64> {
    let mut s = ds.scan();
    let dg = space.digest_column();
    let has_digest = ds.schema().field(&dg).is_some();
    let mut cols = vec![ID, source];
    if has_digest {
        cols.push(dg.as_str());
    }
    s.project(&cols)?;
    let mut stream = s.try_into_stream().await?;
    let (mut todo, mut ids, mut texts) = (0u64, Vec::new(), Vec::new());
    while let Some(b) = stream.try_next().await? {
        let id = b.column(0).as_string::<i32>();
        let text = b.column(1).as_string::<i32>();
        for i in 0..b.num_rows() {
            if text.is_null(i) {
                continue;
            }
            let stale = !has_digest || {
                let d = b.column(2).as_fixed_size_binary();
                d.is_null(i) || d.value(i) != space.passage_digest(text.value(i))
            };
            if stale {
                todo += 1;
                if ids.len() < 64 {
                    ids.push(id.value(i).to_owned());
                    texts.push(format!("{}{}", space.passage_prefix, text.value(i)));
                }
            }
        }
    }
    if !texts.is_empty() {
        let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
        embed_checked(name, e, &refs, space, &ids, 0)?;
    }
    Ok(todo)
}
