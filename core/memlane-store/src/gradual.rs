//! Gradual, online, resumable re-embedding (expand -> backfill -> catch-up).
//!
//! The target space has a vector column and a digest column (`<column>__src`: the
//! blake3-128 of the text each vector was embedded from). A row needs embedding when it
//! is live, has source text, and its digest differs from the digest of its current
//! text: new rows, rows whose content changed, rows never embedded. The backfill walks
//! the fragments; each fragment with work is one Lance commit (a `DataReplacement` of
//! the two columns) carrying the state and a checkpoint. Vectors computed inside a
//! fragment are appended to a side file every few seconds, so a killed run re-embeds at
//! most the batch in flight. Passes repeat until one finds nothing to do (catch-up of
//! rows written meanwhile); then the migrator completes the step.

use std::collections::HashMap;
use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow::array::{
    Array, ArrayRef, AsArray, FixedSizeBinaryArray, FixedSizeListArray, Float32Array, RecordBatch,
    StringArray,
};
use arrow::datatypes::{DataType, Field, Float32Type, Schema as ArrowSchema, SchemaRef};
use futures::{StreamExt, TryStreamExt};
use lance::Dataset;
use lance::dataset::NewColumnTransform;
use lance::dataset::transaction::{DataReplacementGroup, Operation};
use memlane_core::schema::ID;
use memlane_core::{Action, HistoryEntry, Space, StoreState};
use serde::{Deserialize, Serialize};

use crate::convert::digest_field;
use crate::embed::Embedder;
use crate::engine::commit::{Backoff, Conflict, Options, conflict};
use crate::error::{Result, StoreError};
use crate::ops::{Progress, ProgressFn, embed_checked};
use crate::store::{Store, now};

/// Where a gradual re-embed stands (kept in `in_flight.checkpoint`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Checkpoint {
    /// `expand`, `backfill` (first pass) or `catch_up` (later passes).
    pub phase: String,
    /// Target space.
    pub space: String,
    /// Pass number (1 = backfill).
    pub pass: u32,
    /// Rows embedded by this step so far (across resumes).
    pub embedded: u64,
    /// Rows still to embed when last counted (the catch-up lag).
    pub remaining: u64,
    /// Live rows when last counted.
    pub total: u64,
    /// Embedding rate of the current run.
    pub rows_per_sec: f64,
    /// When the checkpoint was written.
    pub at: String,
}

impl Checkpoint {
    /// Share of live rows with a current vector.
    pub fn percent(&self) -> f64 {
        if self.total == 0 {
            return 100.0;
        }
        #[allow(clippy::cast_precision_loss)]
        let done = self.total.saturating_sub(self.remaining) as f64 / self.total as f64;
        done * 100.0
    }

    /// Estimated seconds left at the current rate.
    pub fn eta_secs(&self) -> Option<f64> {
        #[allow(clippy::cast_precision_loss)]
        (self.rows_per_sec > 0.0).then(|| self.remaining as f64 / self.rows_per_sec)
    }
}

/// A version at which every live row with source text had a current vector in the
/// target space, each checked when it was produced (by the embedder output checks, or
/// by the writer that supplied it).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Settled {
    pub(crate) version: u64,
    /// Live rows without source text (so without a vector) as of `version`; an upper
    /// bound when later passes only read the rows that changed.
    pub(crate) without_text: u64,
}

/// What a gradual re-embed did.
#[derive(Debug, Clone, Default)]
pub(crate) struct Outcome {
    pub(crate) embedded: u64,
    pub(crate) commits: u64,
    /// Where the last pass left the space.
    pub(crate) settled: Settled,
}

/// Rows that need embedding, counted by one pass.
struct Count {
    /// Live rows.
    total: u64,
    /// Rows that need embedding, per fragment.
    per_frag: HashMap<u64, u64>,
    /// Rows without source text among those read.
    without_text: u64,
}

impl Count {
    fn remaining(&self) -> u64 {
        self.per_frag.values().sum()
    }
}

/// Inputs of a gradual re-embed.
pub(crate) struct Gradual<'a> {
    pub(crate) store: &'a mut Store,
    /// The migrator's state (with the in-flight migration) to carry in every commit.
    pub(crate) state: StoreState,
    pub(crate) space: Space,
    pub(crate) embedder: Arc<dyn Embedder>,
    pub(crate) embedder_name: String,
    pub(crate) source: String,
    pub(crate) batch: usize,
    pub(crate) throttle: Option<f64>,
    pub(crate) checkpoint_secs: f64,
    /// Settled by an earlier run in the same apply: the first pass then reads only the
    /// rows created or updated after it (later passes always do, after the pass before).
    pub(crate) since: Option<Settled>,
    pub(crate) progress: Option<(ProgressFn, Progress)>,
    pub(crate) migration: u32,
    pub(crate) step: usize,
    pub(crate) file: String,
    pub(crate) checksum: String,
}

/// A todo row of a fragment: its physical offset and the digest of its current text.
struct Todo {
    offset: usize,
    digest: [u8; 16],
}

/// A fragment's columns written: the replacement group, the rows re-embedded (side file
/// or embedder) and the rows the embedder produced.
type Written = (DataReplacementGroup, u64, u64);

type SideWriter = arrow::ipc::writer::StreamWriter<std::io::BufWriter<std::fs::File>>;

/// Background reads and writes of fragments in flight; aborted when the batch fails,
/// so nothing of a failed batch keeps running (their files are never referenced).
#[derive(Default)]
struct Tasks {
    reads: std::collections::VecDeque<tokio::task::JoinHandle<Result<Option<Prepared>>>>,
    writes: std::collections::VecDeque<tokio::task::JoinHandle<Result<Option<Written>>>>,
}

impl Tasks {
    fn abort(&mut self) {
        for t in self.reads.drain(..) {
            t.abort();
        }
        for t in self.writes.drain(..) {
            t.abort();
        }
    }
}

/// Await a background task, turning a panic or cancellation into an error.
async fn joined<T>(h: Option<tokio::task::JoinHandle<Result<Option<T>>>>) -> Result<Option<T>> {
    match h {
        None => Ok(None),
        Some(h) => h
            .await
            .map_err(|e| StoreError::Input(format!("a background re-embed task failed: {e}")))?,
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
struct FragmentReader {
    ds: Arc<Dataset>,
    space: Space,
    source: String,
}

/// A fragment read for re-embedding: its live rows' ids and texts, the rows to embed,
/// and the new columns (old vectors of rows already current, the rest to fill).
struct Prepared {
    frag: lance::dataset::fragment::FileFragment,
    frag_id: u64,
    ids: StringArray,
    texts: StringArray,
    todo: Vec<Todo>,
    flat: Vec<f32>,
    valid: Vec<bool>,
    digests: Vec<[u8; 16]>,
    embedded: u64,
    space: Space,
}

impl FragmentReader {
    async fn read(&self, frag_id: u64) -> Result<Option<Prepared>> {
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
    /// Write the fragment's two new columns (not committed): the replacement group, the
    /// rows re-embedded (side file or embedder) and the rows the embedder produced.
    async fn write(self) -> Result<Option<Written>> {
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

/// At most this many fragments go into one backfill commit.
const MAX_GROUP_FRAGMENTS: usize = 8;
/// Retries of one backfill commit that writers keep preempting.
const COMMIT_RETRIES: u32 = 30;
/// Embedded vectors not yet committed are saved to a side file at least this often.
const SAVE_EVERY_SECS: f64 = 1.0;
/// An embedder call at least this slow has its vectors saved right away.
const SLOW_CALL_SECS: f64 = 0.02;

/// Data file paths of each fragment of `ds`.
fn fragment_files(ds: &Dataset) -> HashMap<u64, Vec<String>> {
    ds.fragments()
        .iter()
        .map(|f| (f.id, f.files.iter().map(|d| d.path.clone()).collect()))
        .collect()
}

impl Gradual<'_> {
    fn side_dir(&self) -> PathBuf {
        crate::sidecar::path(self.store.uri(), crate::sidecar::BACKFILL)
    }

    /// Side files of a fragment are `<prefix>.<run>.arrows`, one per run.
    fn side_prefix(&self, frag: u64) -> String {
        format!("m{:04}-s{}-f{frag}.", self.migration, self.step)
    }

    fn side_files(&self, frag: u64) -> Vec<PathBuf> {
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

    fn side_schema(&self) -> SchemaRef {
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
    fn load_side(&self, frag: u64) -> HashMap<(String, [u8; 16]), Vec<f32>> {
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

    fn state_with(&self, cp: &Checkpoint) -> StoreState {
        let mut st = self.state.clone();
        if let Some(f) = st.in_flight.as_mut() {
            f.checkpoint = serde_json::to_value(cp).ok();
        }
        st
    }

    fn entry(&self, cp: &Checkpoint) -> HistoryEntry {
        let mut e = HistoryEntry::new(Action::Checkpoint, now());
        e.migration = Some(self.migration);
        e.file = Some(self.file.clone());
        e.checksum = Some(self.checksum.clone());
        e.reason = Some(format!(
            "{} pass {} of `{}`: {} embedded, {} remaining",
            cp.phase, cp.pass, cp.space, cp.embedded, cp.remaining
        ));
        e.active_space.clone_from(&self.state.active_space);
        e
    }

    async fn commit(&mut self, op: Operation, cp: &Checkpoint) -> Result<()> {
        let state = self.state_with(cp);
        let entry = self.entry(cp);
        self.store
            .commit(op, Some(state.clone()), &entry, Options::default())
            .await?;
        self.state = state;
        Ok(())
    }

    /// Count the rows that need embedding, per fragment: all rows, or (`since`) only
    /// those created or updated after a version (Lance's row version tracking; our own
    /// column replacements do not count as updates). Falls back to all rows when the
    /// dataset cannot answer the delta (no stable row ids).
    async fn count_todo(&self, ds: &Dataset, since: Option<u64>) -> Result<Count> {
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

    async fn scan_todo(&self, ds: &Dataset, filter: Option<&str>) -> Result<Count> {
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

    /// Run until a pass finds nothing to embed. Resumable at any point.
    pub(crate) async fn run(&mut self) -> Result<Outcome> {
        let mut out = Outcome::default();
        let mut cp: Checkpoint = self
            .state
            .in_flight
            .as_ref()
            .and_then(|f| f.checkpoint.clone())
            .and_then(|v| serde_json::from_value(v).ok())
            .filter(|c: &Checkpoint| c.space == self.space.name)
            .unwrap_or_else(|| Checkpoint {
                space: self.space.name.clone(),
                ..Default::default()
            });
        // expand: the digest column (the vector column came with add_space)
        if self
            .store
            .ds
            .schema()
            .field(&self.space.digest_column())
            .is_none()
        {
            cp.phase = "expand".into();
            cp.at = now();
            let out_schema = Arc::new(ArrowSchema::new(vec![digest_field(&self.space)]));
            let mut fragments = Vec::new();
            let mut schema = None;
            for frag in self.store.ds.get_fragments() {
                let (m, s) = frag
                    .add_columns(NewColumnTransform::AllNulls(out_schema.clone()), None, None)
                    .await?;
                fragments.push(m);
                schema = Some(s);
            }
            let schema = match schema {
                Some(s) => s,
                None => {
                    let mut s = self.store.ds.schema().merge(out_schema.as_ref())?;
                    s.set_field_id(self.store.ds.manifest().max_field_id().into());
                    s
                }
            };
            match self
                .commit(
                    Operation::Merge {
                        fragments,
                        schema,
                        preserves_nullability: true,
                    },
                    &cp,
                )
                .await
            {
                Ok(()) => out.commits += 1,
                // preempted by a writer's append: expand again on the new head
                Err(e) if conflict(&e) == Some(Conflict::Retryable) => {
                    self.store.refresh_data().await?;
                    return Box::pin(self.run()).await;
                }
                Err(e) => return Err(e),
            }
        }
        let started = Instant::now();
        let mut embedded_now = 0u64;
        // the version after which the next pass must look (None: look at every row)
        let mut since = self.since;
        for pass in 1.. {
            if pass > 10_000 {
                return Err(StoreError::Input(format!(
                    "re-embed into `{}` does not converge: writers change rows faster than the embedder keeps up; throttle the writers or raise the batch size",
                    self.space.name
                )));
            }
            self.store.refresh_data().await?;
            let ds = self.store.ds.clone();
            let tc = Instant::now();
            let count = self.count_todo(&ds, since.map(|s| s.version)).await?;
            let remaining = count.remaining();
            crate::prof(&format!("count_todo pass {pass} ({remaining} todo)"), tc);
            // rows without text: exact after a full read, an upper bound after a delta
            let without_text = count.without_text + since.map_or(0, |s| s.without_text);
            // once this pass is done, every row as of `ds` has a current vector
            out.settled = Settled {
                version: ds.version_id(),
                without_text,
            };
            since = Some(out.settled);
            let (total, per_frag) = (count.total, count.per_frag);
            cp.total = total;
            cp.remaining = remaining;
            cp.pass = cp.pass.max(1);
            if remaining == 0 {
                return Ok(out);
            }
            // under steady writes a pass rarely starts at zero: a pass that starts with
            // at most one batch to do is the last; the migrator completes after it and
            // catches up what arrives meanwhile
            let last_pass = remaining <= self.batch.max(1) as u64;
            cp.phase = if cp.pass <= 1 && out.commits <= 1 && cp.embedded == 0 {
                "backfill".into()
            } else {
                "catch_up".into()
            };
            let mut frags: Vec<u64> = per_frag.keys().copied().collect();
            frags.sort_unstable();
            // one commit per batch of fragments: a checkpoint interval of embedding at the
            // rate seen so far, or four fragments' worth of rows, whichever comes first
            // (many small fragments written by live writers then cost one commit, and a
            // fast embedder's batch pipelines reads, embedding and writes across fragments)
            let per_commit = 4 * self.state.fragment_rows() as u64;
            // and never more than a few fragments: a conflict with a writer then costs a
            // small group, not one spanning dozens of writers' small fragments
            let mut batch: Vec<u64> = Vec::new();
            let mut rows = 0u64;
            for (k, frag_id) in frags.iter().enumerate() {
                batch.push(*frag_id);
                rows += per_frag[frag_id];
                let last = k + 1 == frags.len();
                // a slow embedder commits sooner: the batch would take longer than a
                // checkpoint interval at the rate seen so far (unknown: commit)
                #[allow(clippy::cast_precision_loss)]
                let slow =
                    cp.rows_per_sec <= 0.0 || rows as f64 / cp.rows_per_sec >= self.checkpoint_secs;
                if !(last || rows >= per_commit || slow || batch.len() >= MAX_GROUP_FRAGMENTS) {
                    continue;
                }
                let tf = Instant::now();
                let n = self
                    .fragments(&batch, &mut cp, &mut embedded_now, started)
                    .await?;
                crate::prof(&format!("fragments {batch:?}"), tf);
                if n > 0 {
                    out.commits += 1;
                }
                out.embedded += n;
                batch.clear();
                rows = 0;
            }
            cp.pass += 1;
            if last_pass {
                return Ok(out);
            }
        }
        Ok(out)
    }

    /// Embed the todo rows of some fragments and commit them in one `DataReplacement`.
    /// Returns the rows embedded.
    ///
    /// Three stages overlap: the next fragment is read (and its digests compared) while
    /// the embedder works on this one, and each fragment's columns are written in the
    /// background while the next is embedded. The embedder itself is called one batch
    /// at a time, off the async workers, so concurrent reads of the store keep a thread.
    async fn fragments(
        &mut self,
        ids: &[u64],
        cp: &mut Checkpoint,
        embedded_now: &mut u64,
        started: Instant,
    ) -> Result<u64> {
        let saved = cp.clone();
        let files_before = fragment_files(&self.store.ds);
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
        let mut groups = groups;
        let written: std::collections::HashSet<u64> = groups.iter().map(|(g, _)| g.0).collect();
        let mut backoff = Backoff::new(COMMIT_RETRIES);
        loop {
            if groups.is_empty() {
                // every fragment changed meanwhile: the next pass finds their rows again
                *cp = saved;
                return Ok(0);
            }
            cp.at = now();
            let replacements = groups.iter().map(|(g, _)| g.clone()).collect();
            match self
                .commit(Operation::DataReplacement { replacements }, cp)
                .await
            {
                Ok(()) => break,
                Err(e) if backoff.retry(&e).await => {
                    // a writer's commit touched one of these fragments: the column files
                    // already written stay valid for every fragment whose data files are
                    // unchanged (a new deletion file does not move rows); commit those on
                    // the new head, the next pass finds the rows of the others
                    self.store.refresh_data().await?;
                    let now: HashMap<u64, Vec<String>> = fragment_files(&self.store.ds);
                    groups.retain(|(g, _)| now.get(&g.0) == files_before.get(&g.0));
                }
                Err(e) => {
                    *cp = saved;
                    return Err(e);
                }
            }
        }
        let rows: u64 = groups.iter().map(|(_, n)| *n).sum();
        // side files of these fragments are spent, but for a dropped one's
        let kept: std::collections::HashSet<u64> = groups.iter().map(|(g, _)| g.0).collect();
        for id in ids
            .iter()
            .filter(|id| kept.contains(id) || !written.contains(id))
        {
            for f in self.side_files(*id) {
                let _ = std::fs::remove_file(f);
            }
        }
        Ok(rows)
    }

    async fn fragments_inner(
        &mut self,
        ids: &[u64],
        cp: &mut Checkpoint,
        embedded_now: &mut u64,
        started: Instant,
        tasks: &mut Tasks,
    ) -> Result<Vec<(DataReplacementGroup, u64)>> {
        let reader = FragmentReader {
            ds: self.store.ds.clone(),
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
                    StoreError::Input("a fragment write ended without a result".into())
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
                StoreError::Input("a fragment write ended without a result".into())
            })?;
            cp.embedded += embedded;
            groups.push((g, n));
        }
        Ok(groups)
    }

    /// Fill the vectors of a fragment's todo rows: from a killed run's side file where
    /// it has them, else from the embedder (output checked).
    async fn embed_fragment(
        &mut self,
        mut p: Prepared,
        cp: &mut Checkpoint,
        embedded_now: &mut u64,
        started: Instant,
    ) -> Result<Prepared> {
        let d = self.space.dimension;
        let frag_id = p.frag_id;
        let cached = self.load_side(frag_id);
        let side_path = self.side_dir().join(format!(
            "{}{}.arrows",
            self.side_prefix(frag_id),
            uuid::Uuid::new_v4()
        ));
        std::fs::create_dir_all(self.side_dir()).map_err(|e| StoreError::Io {
            path: self.side_dir().display().to_string(),
            source: e,
        })?;
        let mut side: Option<SideWriter> = None;
        // embedded rows not yet in the side file: saved every checkpoint interval (and
        // when the embedder fails), so a fast embedder whose fragment commits within the
        // interval never writes one, and a killed run loses at most an interval of work
        let mut unsaved: Vec<usize> = Vec::new();
        let mut last_save = Instant::now();
        let mut pending: Vec<usize> = Vec::with_capacity(p.todo.len());
        for t in &p.todo {
            let hit = (!cached.is_empty())
                .then(|| cached.get(&(p.ids.value(t.offset).to_owned(), t.digest)))
                .flatten();
            if let Some(v) = hit {
                p.flat[t.offset * d..(t.offset + 1) * d].copy_from_slice(v);
                p.valid[t.offset] = true;
                p.digests[t.offset] = t.digest;
                cp.remaining = cp.remaining.saturating_sub(1);
            } else {
                pending.push(t.offset);
            }
        }
        let by_offset: HashMap<usize, [u8; 16]> =
            p.todo.iter().map(|t| (t.offset, t.digest)).collect();
        let prefix = self.space.passage_prefix.clone();
        for (k, chunk) in pending.chunks(self.batch.max(1)).enumerate() {
            let texts: Vec<std::borrow::Cow<'_, str>> = chunk
                .iter()
                .map(|o| {
                    let t = p.texts.value(*o);
                    if prefix.is_empty() {
                        std::borrow::Cow::Borrowed(t)
                    } else {
                        std::borrow::Cow::Owned(format!("{prefix}{t}"))
                    }
                })
                .collect();
            let refs: Vec<&str> = texts.iter().map(AsRef::as_ref).collect();
            let cids: Vec<String> = chunk.iter().map(|o| p.ids.value(*o).to_owned()).collect();
            let call = Instant::now();
            let r = blocking(|| {
                embed_checked(
                    &self.embedder_name,
                    self.embedder.as_ref(),
                    &refs,
                    &self.space,
                    &cids,
                    k,
                )
            });
            let v = match r {
                Ok(v) => v,
                Err(e) => {
                    // keep what this fragment embedded so far for the resumed run
                    let _ = self.save_side(&mut side, &side_path, &unsaved, &p, &by_offset);
                    if let Some(w) = side.as_mut() {
                        let _ = w.finish();
                    }
                    return Err(e);
                }
            };
            drop(texts);
            for (j, o) in chunk.iter().enumerate() {
                p.flat[o * d..(o + 1) * d].copy_from_slice(&v[j * d..(j + 1) * d]);
                p.valid[*o] = true;
                p.digests[*o] = by_offset[o];
            }
            unsaved.extend_from_slice(chunk);
            p.embedded += chunk.len() as u64;
            *embedded_now += chunk.len() as u64;
            cp.remaining = cp.remaining.saturating_sub(chunk.len() as u64);
            // side file: what a killed run would otherwise embed again
            // a slow call (a model process, a remote API) is saved at once: a kill then
            // costs at most the batch in flight; fast ones are saved once a second
            let slow_call = call.elapsed().as_secs_f64() >= SLOW_CALL_SECS;
            if slow_call
                || last_save.elapsed().as_secs_f64() >= self.checkpoint_secs.min(SAVE_EVERY_SECS)
            {
                self.save_side(&mut side, &side_path, &unsaved, &p, &by_offset)?;
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
        if let Some(mut w) = side.take() {
            w.finish()?;
        }
        Ok(p)
    }

    /// Append the vectors of `offsets` to the fragment's side file and flush it.
    fn save_side(
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

    fn side_batch(
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

    fn report(&self, cp: &mut Checkpoint, embedded_now: u64, started: Instant) {
        let secs = started.elapsed().as_secs_f64();
        #[allow(clippy::cast_precision_loss)]
        if secs > 0.0 {
            cp.rows_per_sec = embedded_now as f64 / secs;
        }
        if let Some((f, p)) = &self.progress {
            let mut p = p.clone();
            p.total = cp.total;
            p.done = cp.total.saturating_sub(cp.remaining);
            f(&p);
        }
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
