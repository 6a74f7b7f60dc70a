//! The work on fragments: reading a fragment's rows that need embedding (digests
//! compared), embedding them, writing the two columns, and committing a group of
//! fragments as one `DataReplacement`, with reads, embedding and writes overlapped.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow::array::{
    Array, ArrayRef, AsArray, FixedSizeBinaryArray, FixedSizeListArray, Float32Array, RecordBatch,
    StringArray,
};
use arrow::datatypes::{DataType, Field, Float32Type, Schema as ArrowSchema, SchemaRef};
use futures::{StreamExt, TryStreamExt};
use lance::Dataset;
use lance::dataset::transaction::DataReplacementGroup;
use memlane_core::ReembedCheckpoint;
use memlane_core::Space;
use memlane_core::schema::ID;

use crate::error::{Result, StoreError};
use crate::vectors::embed_checked;

use super::replace::Ready;
use super::{Gradual, SAVE_EVERY_SECS, SLOW_CALL_SECS};

/// A todo row of a fragment: its physical offset and the digest of its current text.
pub(super) struct Todo {
    pub(super) offset: usize,
    pub(super) digest: [u8; 16],
}

/// A fragment's columns written: the replacement group, the rows re-embedded (side file
/// or embedder) and the rows the embedder produced.
pub(super) type Written = (DataReplacementGroup, u64, u64);

/// Background reads and writes of fragments in flight; aborted when the batch fails,
/// so nothing of a failed batch keeps running (their files are never referenced).
#[derive(Default)]
pub(super) struct Tasks {
    pub(super) reads: std::collections::VecDeque<tokio::task::JoinHandle<Result<Option<Prepared>>>>,
    pub(super) writes: std::collections::VecDeque<tokio::task::JoinHandle<Result<Option<Written>>>>,
}

impl Tasks {
    pub(super) fn abort(&mut self) {
        for t in self.reads.drain(..) {
            t.abort();
        }
        for t in self.writes.drain(..) {
            t.abort();
        }
    }
}

/// Await a background task, turning a panic or cancellation into an error.
pub(super) async fn joined<T>(
    h: Option<tokio::task::JoinHandle<Result<Option<T>>>>,
) -> Result<Option<T>> {
    match h {
        None => Ok(None),
        Some(h) => h
            .await
            .map_err(|e| StoreError::Internal(format!("a background re-embed task failed: {e}")))?,
    }
}

/// Run CPU-bound or blocking work (an embedder call) without holding an async worker:
/// on a multi-threaded runtime the worker's other tasks move to another thread meanwhile.
pub(crate) fn blocking<R>(f: impl FnOnce() -> R) -> R {
    match tokio::runtime::Handle::try_current() {
        Ok(h) if h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(f)
        }
        _ => f(),
    }
}

/// Reads what a fragment's re-embed needs (owned, so it runs as a background task).
#[derive(Clone)]
pub(super) struct FragmentReader {
    pub(super) ds: Arc<Dataset>,
    pub(super) space: Space,
    pub(super) source: String,
}

/// A fragment read for re-embedding: its live rows' ids and texts, the rows to embed,
/// and the new columns (old vectors of rows already current, the rest to fill).
pub(super) struct Prepared {
    pub(super) frag: lance::dataset::fragment::FileFragment,
    pub(super) frag_id: u64,
    pub(super) ids: StringArray,
    pub(super) texts: StringArray,
    pub(super) todo: Vec<Todo>,
    pub(super) flat: Vec<f32>,
    pub(super) valid: Vec<bool>,
    pub(super) digests: Vec<[u8; 16]>,
    pub(super) embedded: u64,
    pub(super) space: Space,
}

impl FragmentReader {
    pub(super) async fn read(&self, frag_id: u64) -> Result<Option<Prepared>> {
        let Some(frag) = self
            .ds
            .get_fragments()
            .into_iter()
            .find(|f| f.id() as u64 == frag_id)
        else {
            return Ok(None);
        };
        let n = frag.physical_rows().await?;
        let dv = frag.get_deletion_vector().await?;
        let vec_col = self.space.column.clone();
        let dg_col = self.space.digest_column();
        let read = self
            .ds
            .schema()
            .project(&[ID, self.source.as_str(), dg_col.as_str()])?;
        #[allow(clippy::cast_possible_truncation)]
        let batches: Vec<RecordBatch> = frag
            .read_physical_slice(0..n as u64, &read, 8192)
            .await?
            .then(|f| f)
            .try_collect()
            .await?;
        let b = arrow::compute::concat_batches(&Arc::new(ArrowSchema::from(&read)), &batches)?;
        drop(batches);
        let ids = b.column(0).as_string::<i32>().clone();
        let texts = b.column(1).as_string::<i32>().clone();
        let old_dg = b.column(2).as_fixed_size_binary().clone();
        let d = self.space.dimension;
        let (todo, keep) = blocking(|| {
            let mut todo = Vec::new();
            let mut keep = 0usize;
            for i in 0..n {
                #[allow(clippy::cast_possible_truncation)]
                let deleted = dv.as_ref().is_some_and(|v| v.contains(i as u32));
                if old_dg.is_valid(i) {
                    keep += 1;
                }
                if deleted || texts.is_null(i) {
                    continue;
                }
                let digest = self.space.passage_digest(texts.value(i));
                if old_dg.is_null(i) || old_dg.value(i) != digest {
                    todo.push(Todo { offset: i, digest });
                }
            }
            (todo, keep)
        });
        if todo.is_empty() {
            return Ok(None);
        }
        // the new columns start from what is there; the todo rows are overwritten.
        // A fragment none of whose rows has a vector yet (a first backfill) does not
        // read the vector column at all.
        let mut flat = vec![0f32; n * d];
        let mut valid = vec![false; n];
        let mut digests = vec![[0u8; 16]; n];
        if keep > 0 {
            let vread = self.ds.schema().project(&[vec_col.as_str()])?;
            #[allow(clippy::cast_possible_truncation)]
            let mut stream = frag
                .read_physical_slice(0..n as u64, &vread, 8192)
                .await?
                .then(|f| f);
            let mut at = 0usize;
            while let Some(vb) = stream.try_next().await? {
                let old = vb.column(0).as_fixed_size_list();
                let vals = old.values().as_primitive::<Float32Type>().values();
                for j in 0..vb.num_rows() {
                    let i = at + j;
                    if old.is_valid(j) && old_dg.is_valid(i) {
                        #[allow(clippy::cast_sign_loss)]
                        let off = old.value_offset(j) as usize;
                        flat[i * d..(i + 1) * d].copy_from_slice(&vals[off..off + d]);
                        valid[i] = true;
                        digests[i].copy_from_slice(old_dg.value(i));
                    }
                }
                at += vb.num_rows();
            }
        }
        Ok(Some(Prepared {
            frag,
            frag_id,
            ids,
            texts,
            todo,
            flat,
            valid,
            digests,
            embedded: 0,
            space: self.space.clone(),
        }))
    }
}

impl Prepared {
    /// The digest of each todo row's current text, by physical offset.
    pub(super) fn digest_by_offset(&self) -> HashMap<usize, [u8; 16]> {
        self.todo.iter().map(|t| (t.offset, t.digest)).collect()
    }

    /// Embed the rows at `offsets` (batch `k` of the fragment) with the embedder's
    /// output checked, and put their vectors and digests in the new columns.
    pub(super) fn embed_chunk(
        &mut self,
        name: &str,
        embedder: &dyn crate::embed::Embedder,
        offsets: &[usize],
        k: usize,
        digest: &HashMap<usize, [u8; 16]>,
    ) -> Result<()> {
        let d = self.space.dimension;
        let prefix = &self.space.passage_prefix;
        let texts: Vec<std::borrow::Cow<'_, str>> = offsets
            .iter()
            .map(|o| {
                let t = self.texts.value(*o);
                if prefix.is_empty() {
                    std::borrow::Cow::Borrowed(t)
                } else {
                    std::borrow::Cow::Owned(format!("{prefix}{t}"))
                }
            })
            .collect();
        let refs: Vec<&str> = texts.iter().map(AsRef::as_ref).collect();
        let ids: Vec<String> = offsets
            .iter()
            .map(|o| self.ids.value(*o).to_owned())
            .collect();
        let v = embed_checked(name, embedder, &refs, &self.space, &ids, k)?;
        drop(texts);
        for (j, o) in offsets.iter().enumerate() {
            self.flat[o * d..(o + 1) * d].copy_from_slice(&v[j * d..(j + 1) * d]);
            self.valid[*o] = true;
            self.digests[*o] = digest[o];
        }
        self.embedded += offsets.len() as u64;
        Ok(())
    }

    /// Embed every todo row, `batch` rows per call (a worker's whole fragment).
    pub(super) fn embed_all(
        &mut self,
        name: &str,
        embedder: &dyn crate::embed::Embedder,
        batch: usize,
    ) -> Result<()> {
        let digest = self.digest_by_offset();
        let offsets: Vec<usize> = self.todo.iter().map(|t| t.offset).collect();
        for (k, chunk) in offsets.chunks(batch.max(1)).enumerate() {
            self.embed_chunk(name, embedder, chunk, k, &digest)?;
        }
        Ok(())
    }

    /// Write the fragment's two new columns (not committed): the replacement group, the
    /// rows re-embedded (side file or embedder) and the rows the embedder produced.
    pub(super) async fn write(self) -> Result<Option<Written>> {
        let d = self.space.dimension;
        let vec_col = self.space.column.clone();
        let dg_col = self.space.digest_column();
        let ds_schema = self.frag.dataset().schema().clone();
        let target = ds_schema.project(&[vec_col.as_str(), dg_col.as_str()])?;
        let out_schema: SchemaRef = Arc::new(ArrowSchema::from(&target));
        let n = self.valid.len();
        #[allow(clippy::cast_possible_truncation, clippy::cast_possible_wrap)]
        let vectors = FixedSizeListArray::try_new(
            Arc::new(Field::new("item", DataType::Float32, true)),
            d as i32,
            Arc::new(Float32Array::from(self.flat)),
            Some(arrow::buffer::NullBuffer::from(self.valid.clone())),
        )?;
        let dg = FixedSizeBinaryArray::try_from_sparse_iter_with_size(
            self.digests
                .iter()
                .zip(&self.valid)
                .map(|(x, ok)| ok.then_some(x.as_slice())),
            16,
        )?;
        let cols: Vec<ArrayRef> = vec![Arc::new(vectors), Arc::new(dg)];
        let out = RecordBatch::try_new(out_schema, cols)?;
        // handed over in slices, so Lance encodes while it writes
        let slices: Vec<_> = (0..n)
            .step_by(8192)
            .map(|s| Ok::<_, lance::Error>(out.slice(s, 8192.min(n - s))))
            .collect();
        let group = self
            .frag
            .write_columns(futures::stream::iter(slices), &target)
            .await?;
        Ok(Some((group, self.todo.len() as u64, self.embedded)))
    }
}

/// Data file paths of each fragment of `ds`.
pub(super) fn fragment_files(ds: &Dataset) -> HashMap<u64, Vec<String>> {
    ds.fragments()
        .iter()
        .map(|f| (f.id, f.files.iter().map(|d| d.path.clone()).collect()))
        .collect()
}

impl Gradual<'_> {
    /// Embed the todo rows of some fragments and commit them in one `DataReplacement`.
    /// Returns the rows embedded.
    ///
    /// Three stages overlap: the next fragment is read (and its digests compared) while
    /// the embedder works on this one, and each fragment's columns are written in the
    /// background while the next is embedded. The embedder itself is called one batch
    /// at a time, off the async workers, so concurrent reads of the store keep a thread.
    pub(super) async fn fragments(
        &mut self,
        ids: &[u64],
        cp: &mut ReembedCheckpoint,
        embedded_now: &mut u64,
        started: Instant,
    ) -> Result<u64> {
        let saved = cp.clone();
        let files_before = fragment_files(self.store.dataset());
        let mut tasks = Tasks::default();
        let r = self
            .fragments_inner(ids, cp, embedded_now, started, &mut tasks)
            .await;
        let groups = match r {
            Ok(g) => g,
            Err(e) => {
                tasks.abort();
                *cp = saved;
                return Err(e);
            }
        };
        let written: std::collections::HashSet<u64> = groups.iter().map(|(g, _)| g.0).collect();
        let ready = groups
            .into_iter()
            .map(|(group, rows)| Ready {
                source_files: files_before.get(&group.0).cloned().unwrap_or_default(),
                group,
                rows,
            })
            .collect();
        let groups = match self.commit_replacements(ready, cp).await {
            Ok(g) if g.is_empty() => {
                // every fragment changed meanwhile: the next pass finds their rows again
                *cp = saved;
                return Ok(0);
            }
            Ok(g) => g,
            Err(e) => {
                *cp = saved;
                return Err(e);
            }
        };
        let rows: u64 = groups.iter().map(|r| r.rows).sum();
        // side files of these fragments are spent, but for a dropped one's
        let kept: std::collections::HashSet<u64> = groups.iter().map(|r| r.group.0).collect();
        for id in ids
            .iter()
            .filter(|id| kept.contains(id) || !written.contains(id))
        {
            for f in self.side_files(*id).await {
                let _ = self.store.side_files().delete(&f).await;
            }
        }
        Ok(rows)
    }

    pub(super) async fn fragments_inner(
        &mut self,
        ids: &[u64],
        cp: &mut ReembedCheckpoint,
        embedded_now: &mut u64,
        started: Instant,
        tasks: &mut Tasks,
    ) -> Result<Vec<(DataReplacementGroup, u64)>> {
        let reader = FragmentReader {
            ds: self.store.dataset().clone(),
            space: self.space.clone(),
            source: self.source.clone(),
        };
        let spawn_read = |tasks: &mut Tasks, id: u64| {
            let r = reader.clone();
            tasks
                .reads
                .push_back(tokio::spawn(async move { r.read(id).await }));
        };
        if let Some(id) = ids.first() {
            spawn_read(tasks, *id);
        }
        let mut done: Vec<(DataReplacementGroup, u64)> = Vec::with_capacity(ids.len());
        for (i, _) in ids.iter().enumerate() {
            let next = tasks.reads.pop_front();
            if let Some(id) = ids.get(i + 1) {
                spawn_read(tasks, *id);
            }
            let Some(prep) = joined(next).await? else {
                continue;
            };
            let prep = self.embed_fragment(prep, cp, embedded_now, started).await?;
            // at most two fragments' columns in memory while writing
            if tasks.writes.len() >= 2 {
                let w = tasks.writes.pop_front();
                let (g, n, embedded) = joined(w).await?.ok_or_else(|| {
                    StoreError::Internal("a fragment write ended without a result".into())
                })?;
                cp.embedded += embedded;
                done.push((g, n));
            }
            tasks
                .writes
                .push_back(tokio::spawn(async move { prep.write().await }));
        }
        let mut groups = done;
        while let Some(w) = tasks.writes.pop_front() {
            let (g, n, embedded) = joined(Some(w)).await?.ok_or_else(|| {
                StoreError::Internal("a fragment write ended without a result".into())
            })?;
            cp.embedded += embedded;
            groups.push((g, n));
        }
        Ok(groups)
    }

    /// Fill the vectors of a fragment's todo rows: from a killed run's side file where
    /// it has them, else from the embedder (output checked).
    pub(super) async fn embed_fragment(
        &mut self,
        mut p: Prepared,
        cp: &mut ReembedCheckpoint,
        embedded_now: &mut u64,
        started: Instant,
    ) -> Result<Prepared> {
        let d = self.space.dimension;
        let frag_id = p.frag_id;
        let cached = self.load_side(frag_id).await;
        // embedded rows not yet in the side file: saved every checkpoint interval (and
        // when the embedder fails), so a fast embedder whose fragment commits within the
        // interval never writes one, and a killed run loses at most an interval of work
        let mut unsaved: Vec<usize> = Vec::new();
        let mut last_save = Instant::now();
        let mut pending: Vec<usize> = Vec::with_capacity(p.todo.len());
        for t in &p.todo {
            let key = (p.ids.value(t.offset).to_owned(), t.digest);
            let hit = (!cached.is_empty()).then(|| cached.get(&key)).flatten();
            let sampled = hit.is_none().then(|| self.from_sample.get(&key)).flatten();
            if sampled.is_some() {
                // embedded by this re-embed (its compatibility check), just earlier
                self.stats.from_sample += 1;
                p.embedded += 1;
            }
            if let Some(v) = hit.or(sampled) {
                p.flat[t.offset * d..(t.offset + 1) * d].copy_from_slice(v);
                p.valid[t.offset] = true;
                p.digests[t.offset] = t.digest;
                cp.remaining = cp.remaining.saturating_sub(1);
            } else {
                pending.push(t.offset);
            }
        }
        if pending.len() < p.todo.len() {
            // rows filled without the model (a killed run's, the compat sample's)
            self.report(cp, *embedded_now, started);
        }
        let by_offset = p.digest_by_offset();
        for (k, chunk) in pending.chunks(self.batch.max(1)).enumerate() {
            let call = Instant::now();
            let r = blocking(|| {
                p.embed_chunk(
                    &self.embedder_name,
                    self.embedder.as_ref(),
                    chunk,
                    k,
                    &by_offset,
                )
            });
            if let Err(e) = r {
                // keep what this fragment embedded so far for the resumed run
                let _ = self.save_side(&unsaved, &p, &by_offset).await;
                return Err(e);
            }
            unsaved.extend_from_slice(chunk);
            *embedded_now += chunk.len() as u64;
            cp.remaining = cp.remaining.saturating_sub(chunk.len() as u64);
            // side file: what a killed run would otherwise embed again
            // a slow call (a model process, a remote API) is saved at once: a kill then
            // costs at most the batch in flight; fast ones are saved once a second
            let slow_call = call.elapsed().as_secs_f64() >= SLOW_CALL_SECS;
            if slow_call
                || last_save.elapsed().as_secs_f64() >= self.checkpoint_secs.min(SAVE_EVERY_SECS)
            {
                self.save_side(&unsaved, &p, &by_offset).await?;
                unsaved.clear();
                last_save = Instant::now();
            }
            self.report(cp, *embedded_now, started);
            if let Some(limit) = self.throttle.filter(|l| *l > 0.0) {
                #[allow(clippy::cast_precision_loss)]
                let due = Duration::from_secs_f64(*embedded_now as f64 / limit);
                if let Some(wait) = due.checked_sub(started.elapsed()) {
                    tokio::time::sleep(wait).await;
                }
            }
        }
        Ok(p)
    }
}
