//! Promote: a branch's own commits replayed onto the store it was branched from, so a
//! migration rehearsed on a branch (and paid for there) becomes the store's without
//! running its embedders again.
//!
//! A fast-forward, commit by commit: each commit the branch made after its branch point
//! is read back (operation, state, history entry, seal), its files that live under the
//! branch (data, deletion and index files) are copied into the store and checked against
//! the digests the branch sealed, its references to the store's own files are pointed
//! back at the store, and it is committed on the store with its state and entry (marked
//! `promoted_from`) under a new seal. The store then carries the same history a direct
//! apply would have written, so `verify`, tags and `history` need nothing special.
//!
//! The store must not have moved since the branch point (a commit there would be lost
//! or contradicted). After each replayed commit the store's fragments are compared with
//! the branch's: a writer that commits during the promote stops it, leaving the store at
//! a consistent version (every replayed commit is one the branch made). A killed promote
//! is resumed by running it again: the store's head names the last branch commit it
//! holds.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::sync::Arc;

use futures::TryStreamExt;
use lance::dataset::transaction::Operation;
use lance::io::ObjectStore;
use lance::table::format::{DataFile, Fragment, IndexMetadata};
use memlane_core::{Action, BranchOrigin, FileDigest, HistoryEntry};
use object_store::path::Path;
use serde::Serialize;

use crate::engine::files;
use crate::engine::record::{self, Recorded};
use crate::error::{Result, StoreError};
use crate::store::{Store, branch_uri, check_name, locate, now};

/// How to promote.
#[derive(Debug, Clone, Default)]
pub struct PromoteOptions {
    /// Keep the branch afterwards (default: delete it once promoted).
    pub keep: bool,
}

/// What a promote did.
#[derive(Debug, Clone, Serialize)]
pub struct PromoteReport {
    /// The store promoted into.
    pub store: String,
    /// The branch promoted.
    pub branch: String,
    /// The store's version the branch was made at.
    pub branched_at: u64,
    /// The branch's version that is now the store's.
    pub branch_version: u64,
    /// The store's version before the promote (the branch point, or where a killed
    /// promote stopped).
    pub version_before: u64,
    /// The store's version after it.
    pub version: u64,
    /// Branch commits replayed by this run.
    pub commits: usize,
    /// Whether this run finished a promote that was stopped before.
    pub resumed: bool,
    /// Files copied from the branch (data, deletion, index files).
    pub files_copied: usize,
    /// Their bytes.
    pub bytes_copied: u64,
    /// Migrations completed by the promoted commits (file names).
    pub migrations: Vec<String>,
    /// Whether the branch was deleted afterwards.
    pub branch_deleted: bool,
}

impl fmt::Display for PromoteReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "promoted {} (branched at v{}, its v{}) into {}: v{} -> v{}",
            self.branch,
            self.branched_at,
            self.branch_version,
            self.store,
            self.version_before,
            self.version
        )?;
        writeln!(
            f,
            "  {} commit(s) replayed{}, {} file(s) copied ({} bytes), no model called",
            self.commits,
            if self.resumed { " (resumed)" } else { "" },
            self.files_copied,
            self.bytes_copied
        )?;
        if !self.migrations.is_empty() {
            writeln!(
                f,
                "  migrations now applied: {}",
                self.migrations.join(", ")
            )?;
        }
        if self.branch_deleted {
            writeln!(f, "  branch deleted")?;
        }
        Ok(())
    }
}

/// Promote branch `name` of `store` into it (see the module docs).
pub async fn promote(
    store: &mut Store,
    name: &str,
    opts: &PromoteOptions,
) -> Result<PromoteReport> {
    check_name(name)?;
    store.ensure_intact()?;
    let uri = branch_uri(store.uri(), name);
    let _store_lock = store.lock("memlane branch promote").await?;
    store.refresh().await?;
    if let Some(report) = already_promoted(store, name, &uri, opts).await? {
        return Ok(report);
    }
    let mut branch = Store::open_with(&uri, store.storage().clone())
        .await
        .map_err(|e| match e {
            StoreError::NotAStore { .. } | StoreError::NotFound { .. } => {
                StoreError::NotFound { uri: uri.clone() }
            }
            e => e,
        })?;
    let branch_lock = branch.lock("memlane branch promote").await?;
    branch.refresh().await?;
    let records = record::walk(branch.dataset()).await?;
    let origin = branch_origin(&records, &uri)?;
    let start = start_after(store, &uri, &origin, &records).await?;
    let todo: Vec<&Recorded> = records.iter().filter(|r| r.version > start.after).collect();
    check_branch(&branch, &todo, &start)?;
    check_replayable(&todo, &uri)?;
    let map = BaseMap::new(store, &branch).await?;
    let mut report = PromoteReport {
        store: store.uri().to_owned(),
        branch: uri.clone(),
        branched_at: origin.version,
        branch_version: branch.version(),
        version_before: store.version(),
        version: store.version(),
        commits: 0,
        resumed: start.resumed,
        files_copied: 0,
        bytes_copied: 0,
        migrations: vec![],
        branch_deleted: false,
    };
    // first every file, copied and checked (nothing is committed if one is wrong)...
    let plan = todo
        .iter()
        .map(|r| Planned::new(&map, r))
        .collect::<Result<Vec<_>>>()?;
    let copier = Copier::new(store, &branch).await?;
    let verified = copier.copy_all(&plan, &mut report).await?;
    branch.copy_adapters(store.uri()).await?;
    // ...then the commits, in the branch's order
    for p in &plan {
        replay(store, &branch, &map, p, &verified, &mut report).await?;
    }
    finish(store, &branch, &origin, &mut report).await?;
    drop((branch_lock, branch));
    if !opts.keep {
        store.delete_branch(name).await?;
        report.branch_deleted = true;
    }
    Ok(report)
}

/// When the store's head is this branch's `Promote` commit (a run killed while it
/// deleted the branch, or a second run): the deletion is finished, nothing else done.
async fn already_promoted(
    store: &Store,
    name: &str,
    uri: &str,
    opts: &PromoteOptions,
) -> Result<Option<PromoteReport>> {
    let head = record::read(store.dataset(), store.version()).await?;
    let Some(e) = head.entry.filter(|e| e.action == Action::Promote) else {
        return Ok(None);
    };
    let Some(from) = e.promoted_from.filter(|o| o.uri == uri) else {
        return Ok(None);
    };
    let deleted = !opts.keep && store.delete_branch(name).await.is_ok();
    Ok(Some(PromoteReport {
        store: store.uri().to_owned(),
        branch: uri.to_owned(),
        branched_at: e.branched_from.map_or(0, |o| o.version),
        branch_version: from.version,
        version_before: store.version(),
        version: store.version(),
        commits: 0,
        resumed: true,
        files_copied: 0,
        bytes_copied: 0,
        migrations: vec![],
        branch_deleted: deleted,
    }))
}

/// Where the branch came from (its `Branch` commit).
fn branch_origin(records: &[Recorded], uri: &str) -> Result<BranchOrigin> {
    records
        .iter()
        .filter_map(|r| r.entry.as_ref())
        .find(|e| e.action == Action::Branch)
        .and_then(|e| e.branched_from.clone())
        .ok_or_else(|| {
            StoreError::State(format!(
                "{uri} is not a complete branch (its branch commit is missing: a killed `branch create`); delete it with `memlane branch delete`"
            ))
        })
}

/// Where the replay starts: after the branch's own branch commit, or after the last
/// branch commit a stopped promote put on the store.
struct Start {
    after: u64,
    resumed: bool,
}

async fn start_after(
    store: &Store,
    uri: &str,
    origin: &BranchOrigin,
    records: &[Recorded],
) -> Result<Start> {
    let branch_commit = records
        .iter()
        .find(|r| r.entry.as_ref().is_some_and(|e| e.action == Action::Branch))
        .map_or(0, |r| r.version);
    let head = store.version();
    if head == origin.version {
        return Ok(Start {
            after: branch_commit,
            resumed: false,
        });
    }
    let last = record::read(store.dataset(), head).await?;
    let promoted = last
        .entry
        .as_ref()
        .and_then(|e| e.promoted_from.as_ref().map(|o| (e.action, o)));
    match promoted {
        Some((Action::Promote, o)) if o.uri == uri => Err(StoreError::State(format!(
            "{uri} was already promoted (its v{} is the store's v{head}); delete the branch with `memlane branch delete`",
            o.version
        ))),
        Some((_, o)) if o.uri == uri && head > origin.version => Ok(Start {
            after: o.version,
            resumed: true,
        }),
        _ if head < origin.version => Err(StoreError::State(format!(
            "the store is at v{head}, older than the branch point v{}: it was restored from a backup since; branch it again",
            origin.version
        ))),
        _ => Err(StoreError::State(format!(
            "the store moved since {uri} was made at v{}: it is at v{head} ({} commit(s) since), and promoting would drop them; apply the migrations to the store itself (`memlane apply`), or rehearse again on a new branch",
            origin.version,
            head - origin.version
        ))),
    }
}

/// Refuse a branch with nothing to promote, or with a migration it did not finish.
fn check_branch(branch: &Store, todo: &[&Recorded], start: &Start) -> Result<()> {
    if todo.is_empty() && !start.resumed {
        return Err(StoreError::State(format!(
            "{} has no commits of its own: nothing to promote (rehearse with --keep, or apply migrations on the branch, first)",
            branch.uri()
        )));
    }
    if let Some(f) = &branch.state().in_flight {
        return Err(StoreError::State(format!(
            "{} has {} in flight (its rehearsal or apply did not finish); finish it on the branch with `memlane apply {} FOLDER`, then promote",
            branch.uri(),
            f.file,
            branch.uri()
        )));
    }
    Ok(())
}

/// Refuse, before anything is written, a branch whose commits cannot be replayed.
fn check_replayable(todo: &[&Recorded], uri: &str) -> Result<()> {
    for r in todo {
        let v = r.version;
        if let Some(p) = &r.problem {
            return Err(StoreError::Verify(format!(
                "{uri} v{v}: {p}; a branch whose record is broken cannot be promoted (delete it and rehearse again)"
            )));
        }
        let (Some(entry), Some(_)) = (&r.entry, &r.seal) else {
            return Err(StoreError::State(format!(
                "{uri} v{v} was not written by memlane (another tool committed to the branch); promote replays only memlane's commits: delete the branch and rehearse again"
            )));
        };
        if entry.action == Action::Sample {
            return Err(StoreError::State(format!(
                "{uri} was cut to a sample of the store's rows (v{v}: {}); promoting it would delete the others. Rehearse without --sample (or apply on the store) to promote",
                entry.reason.as_deref().unwrap_or("sample")
            )));
        }
        match &r.operation {
            Some(
                Operation::Append { .. }
                | Operation::Delete { .. }
                | Operation::Update { .. }
                | Operation::Merge { .. }
                | Operation::Overwrite { .. }
                | Operation::DataReplacement { .. }
                | Operation::Project { .. }
                | Operation::UpdateConfig { .. }
                | Operation::CreateIndex { .. },
            ) => {}
            Some(Operation::Rewrite {
                rewritten_indices, ..
            }) if rewritten_indices.is_empty() => {}
            Some(op) => {
                return Err(StoreError::State(format!(
                    "{uri} v{v} is a `{op}` commit, which promote cannot replay (only data, schema, index and state changes are replayed); apply the migrations to the store itself"
                )));
            }
            None => {
                return Err(StoreError::State(format!(
                    "{uri} v{v} has no transaction file to replay; apply the migrations to the store itself"
                )));
            }
        }
    }
    Ok(())
}

/// How the branch's base paths translate to the store's: the store's own root is the
/// store's `None`; any other base must be one the store names too.
struct BaseMap {
    to_store: HashMap<u32, Option<u32>>,
}

impl BaseMap {
    async fn new(store: &Store, branch: &Store) -> Result<BaseMap> {
        let (_, root) = locate(store.uri(), store.storage()).await?;
        let mut theirs = HashMap::new();
        for (id, b) in &store.dataset().manifest().base_paths {
            theirs.insert(locate(&b.path, store.storage()).await?.1, *id);
        }
        let mut to_store = HashMap::new();
        for (id, b) in &branch.dataset().manifest().base_paths {
            let (_, at) = locate(&b.path, store.storage()).await?;
            let mapped = if at == root {
                None
            } else if let Some(t) = theirs.get(&at) {
                Some(*t)
            } else {
                return Err(StoreError::State(format!(
                    "{} reads files from {}, which the store does not know; promote it into the store it was branched from",
                    branch.uri(),
                    b.path
                )));
            };
            to_store.insert(*id, mapped);
        }
        Ok(BaseMap { to_store })
    }

    /// The store's base id for a branch base id (`None`: the branch's own root, so the
    /// file is copied into the store's root).
    fn map(&self, base: Option<u32>, what: &str) -> Result<Option<u32>> {
        match base {
            None => Ok(None),
            Some(id) => self.to_store.get(&id).copied().ok_or_else(|| {
                StoreError::Verify(format!(
                    "{what} names base path {id}, which the branch's manifest does not declare"
                ))
            }),
        }
    }
}

/// A translated operation and the branch files it needs copied (paths relative to the
/// dataset root).
#[derive(Default)]
struct Translated {
    copies: Vec<String>,
}

impl Translated {
    fn data_file(&mut self, map: &BaseMap, d: &DataFile) -> Result<DataFile> {
        let mut d = d.clone();
        if d.base_id.is_none() {
            self.copies.push(format!("data/{}", d.path));
        }
        d.base_id = map.map(d.base_id, &format!("data file {}", d.path))?;
        Ok(d)
    }

    fn fragment(&mut self, map: &BaseMap, f: &Fragment) -> Result<Fragment> {
        let mut f = f.clone();
        f.files = f
            .files
            .iter()
            .map(|d| self.data_file(map, d))
            .collect::<Result<_>>()?;
        if !f.overlays.is_empty() {
            return Err(StoreError::State(format!(
                "fragment {} carries data overlay files, which promote does not copy; apply the migrations to the store itself",
                f.id
            )));
        }
        if let Some(del) = f.deletion_file.as_mut() {
            if del.base_id.is_none() {
                // Lance's layout: `_deletions/{fragment}-{read_version}-{id}.{suffix}`
                self.copies.push(format!(
                    "_deletions/{}-{}-{}.{}",
                    f.id,
                    del.read_version,
                    del.id,
                    del.file_type.suffix()
                ));
            }
            del.base_id = map.map(del.base_id, &format!("deletion file of fragment {}", f.id))?;
        }
        Ok(f)
    }

    fn fragments(&mut self, map: &BaseMap, fs: &[Fragment]) -> Result<Vec<Fragment>> {
        fs.iter().map(|f| self.fragment(map, f)).collect()
    }

    fn index(&mut self, map: &BaseMap, i: &IndexMetadata) -> Result<IndexMetadata> {
        let mut i = i.clone();
        if i.base_id.is_none() {
            self.copies.push(format!("_indices/{}/", i.uuid));
        }
        i.base_id = map.map(i.base_id, &format!("index {}", i.name))?;
        Ok(i)
    }

    /// `op` with every file reference pointed at the store.
    fn operation(&mut self, map: &BaseMap, op: &Operation) -> Result<Operation> {
        let mut op = op.clone();
        match &mut op {
            Operation::Append { fragments }
            | Operation::Overwrite { fragments, .. }
            | Operation::Merge { fragments, .. } => *fragments = self.fragments(map, fragments)?,
            Operation::Delete {
                updated_fragments, ..
            } => *updated_fragments = self.fragments(map, updated_fragments)?,
            Operation::Update {
                updated_fragments,
                new_fragments,
                ..
            } => {
                *updated_fragments = self.fragments(map, updated_fragments)?;
                *new_fragments = self.fragments(map, new_fragments)?;
            }
            Operation::Rewrite { groups, .. } => {
                for g in groups.iter_mut() {
                    g.old_fragments = self.fragments(map, &g.old_fragments)?;
                    g.new_fragments = self.fragments(map, &g.new_fragments)?;
                }
            }
            Operation::DataReplacement { replacements } => {
                for r in replacements.iter_mut() {
                    r.1 = self.data_file(map, &r.1)?;
                }
            }
            Operation::CreateIndex {
                new_indices,
                removed_indices,
            } => {
                *new_indices = new_indices
                    .iter()
                    .map(|i| self.index(map, i))
                    .collect::<Result<_>>()?;
                // removed ones are the store's already: nothing to copy
                let mut none = Translated::default();
                *removed_indices = removed_indices
                    .iter()
                    .map(|i| none.index(map, i))
                    .collect::<Result<_>>()?;
            }
            _ => {}
        }
        Ok(op)
    }
}
/// One branch commit, translated for the store.
struct Planned<'a> {
    rec: &'a Recorded,
    op: Operation,
    copies: Vec<String>,
}

impl<'a> Planned<'a> {
    fn new(map: &BaseMap, rec: &'a Recorded) -> Result<Planned<'a>> {
        let Some(op) = &rec.operation else {
            return Err(StoreError::Internal(format!(
                "branch v{} has no operation",
                rec.version
            )));
        };
        let mut t = Translated::default();
        let op = t.operation(map, op)?;
        Ok(Planned {
            rec,
            op,
            copies: t.copies,
        })
    }
}

/// Copies files from the branch's root to the store's (the same object store: the
/// branch lives beside the store).
struct Copier {
    store: Arc<ObjectStore>,
    from: Path,
    to: Path,
}

impl Copier {
    async fn new(store: &Store, branch: &Store) -> Result<Copier> {
        let (os, to) = locate(store.uri(), store.storage()).await?;
        let (_, from) = locate(branch.uri(), store.storage()).await?;
        Ok(Copier {
            store: os,
            from,
            to,
        })
    }

    /// Copy every file the plan needs, then check each copied data file against the
    /// digest the branch sealed for it. Returns those digests (what the promoted commits
    /// seal). On a mismatch the copies are removed and nothing is committed.
    async fn copy_all(
        &self,
        plan: &[Planned<'_>],
        report: &mut PromoteReport,
    ) -> Result<BTreeMap<String, FileDigest>> {
        let mut sealed: BTreeMap<&str, (&FileDigest, u64)> = BTreeMap::new();
        for p in plan {
            if let Some(seal) = &p.rec.seal {
                for (path, d) in &seal.files {
                    sealed.insert(path.as_str(), (d, p.rec.version));
                }
            }
        }
        let mut copied = Vec::new();
        let mut seen = HashSet::new();
        for rel in plan.iter().flat_map(|p| p.copies.iter()) {
            if seen.insert(rel.as_str()) {
                let files = self.copy(rel).await?;
                report.files_copied += files.len();
                report.bytes_copied += files.iter().map(|(_, b)| b).sum::<u64>();
                copied.extend(files.into_iter().map(|(f, _)| f));
            }
        }
        let mut verified = BTreeMap::new();
        for f in &copied {
            let Some((path, (want, v))) = f
                .strip_prefix("data/")
                .and_then(|p| sealed.get(p).map(|w| (p, w)))
            else {
                continue;
            };
            let (blake3, bytes) = files::hash_object(&self.store, &join(&self.to, f))
                .await
                .map_err(|e| storage(f, &e))?;
            if blake3 != want.blake3 || bytes != want.bytes {
                self.remove(&copied).await;
                return Err(StoreError::Verify(format!(
                    "{}/{f} does not match the digest its commit (branch v{v}) sealed ({} bytes, blake3 {}; the file has {bytes} bytes, blake3 {blake3}): the branch was changed after it was written, so it cannot be promoted; the store is unchanged. Delete the branch and rehearse again",
                    report.branch, want.bytes, want.blake3
                )));
            }
            verified.insert(path.to_owned(), (*want).clone());
        }
        Ok(verified)
    }

    /// Copy `rel` (a file, or a directory when it ends in `/`); returns its files
    /// (relative to the root) and their sizes.
    async fn copy(&self, rel: &str) -> Result<Vec<(String, u64)>> {
        let mut files = Vec::new();
        if let Some(dir) = rel.strip_suffix('/') {
            let prefix = join(&self.from, dir);
            let listed: Vec<_> = self
                .store
                .inner
                .list(Some(&prefix))
                .try_collect()
                .await
                .map_err(|e| storage(rel, &e))?;
            for m in listed {
                let sub: Vec<String> = m
                    .location
                    .prefix_match(&prefix)
                    .into_iter()
                    .flatten()
                    .map(|p| p.as_ref().to_owned())
                    .collect();
                files.push((format!("{dir}/{}", sub.join("/")), m.size));
            }
        } else {
            let size = self
                .store
                .size(&join(&self.from, rel))
                .await
                .map_err(|e| storage(rel, &e))?;
            files.push((rel.to_owned(), size));
        }
        for (f, _) in &files {
            self.store
                .copy(&join(&self.from, f), &join(&self.to, f))
                .await
                .map_err(|e| storage(f, &e))?;
        }
        Ok(files)
    }

    /// Remove copies no commit refers to (best effort: an orphan file is harmless).
    async fn remove(&self, copied: &[String]) {
        for f in copied {
            let _ = self.store.delete(&join(&self.to, f)).await;
        }
    }
}

fn join(root: &Path, rel: &str) -> Path {
    rel.split('/')
        .filter(|s| !s.is_empty())
        .fold(root.clone(), |p, s| p.join(s))
}

fn storage(path: &str, e: &dyn fmt::Display) -> StoreError {
    StoreError::Storage {
        path: path.to_owned(),
        message: format!("cannot copy it from the branch: {e}"),
    }
}

/// Replay one branch commit on the store (its files already copied and checked).
async fn replay(
    store: &mut Store,
    branch: &Store,
    map: &BaseMap,
    p: &Planned<'_>,
    verified: &BTreeMap<String, FileDigest>,
    report: &mut PromoteReport,
) -> Result<()> {
    let Some(entry) = &p.rec.entry else {
        return Ok(());
    };
    let digests = sealed_digests(store, &p.op, verified).await?;
    let mut entry = entry.clone();
    entry.promoted_from = Some(BranchOrigin {
        uri: report.branch.clone(),
        version: p.rec.version,
    });
    let before = store.version();
    let v = match store
        .commit_with_files(p.op.clone(), p.rec.state.clone(), &entry, digests)
        .await
    {
        Ok(v) => v,
        Err(e) if crate::engine::commit::conflict(&e).is_some() => {
            return Err(interrupted(store, report, p.rec.version, None));
        }
        Err(e) => return Err(e),
    };
    if v != before + 1 || !same_fragments(store, branch, map, p.rec.version).await? {
        return Err(interrupted(store, report, p.rec.version, Some(v)));
    }
    report.commits += 1;
    report.version = v;
    if entry.action == Action::Migration
        && let Some(f) = &entry.file
    {
        report.migrations.push(f.clone());
    }
    Ok(())
}

/// The digests the promoted commit of `op` seals: the branch's, checked on the copies;
/// a file the branch did not seal is hashed here.
async fn sealed_digests(
    store: &Store,
    op: &Operation,
    verified: &BTreeMap<String, FileDigest>,
) -> Result<BTreeMap<String, FileDigest>> {
    let added = files::new_files(Some(store.dataset()), op);
    let (known, unsealed): (Vec<_>, Vec<_>) = added
        .into_iter()
        .partition(|(_, f)| verified.contains_key(f));
    let os = store.dataset().object_store(None).await?;
    let mut digests = files::digests(&os, &store.dataset().data_dir(), &unsealed).await?;
    for (_, f) in known {
        if let Some(d) = verified.get(&f) {
            digests.insert(f, d.clone());
        }
    }
    Ok(digests)
}

/// Whether the store's fragments now are the branch's at `v`, file for file.
async fn same_fragments(store: &Store, branch: &Store, map: &BaseMap, v: u64) -> Result<bool> {
    let at = branch.dataset().checkout_version(v).await?;
    let mut t = Translated::default();
    let want = t.fragments(map, at.fragments())?;
    /// fragment id, data file paths, deletion file (read version, id)
    type Layout = Vec<(u64, Vec<String>, Option<(u64, u64)>)>;
    let key = |fs: &[Fragment]| -> Layout {
        fs.iter()
            .map(|f| {
                (
                    f.id,
                    f.files.iter().map(|d| d.path.clone()).collect(),
                    f.deletion_file.as_ref().map(|d| (d.read_version, d.id)),
                )
            })
            .collect()
    };
    Ok(key(&want) == key(store.dataset().fragments()))
}

/// A writer committed to the store during the promote: its commit landed under this
/// one (`landed`: the version this branch commit became) or made it impossible.
fn interrupted(
    store: &Store,
    report: &PromoteReport,
    branch_v: u64,
    landed: Option<u64>,
) -> StoreError {
    let what = match landed {
        Some(v) => format!("branch v{branch_v} landed as v{v} over its commit"),
        None => format!("branch v{branch_v} could not be committed over its commit"),
    };
    let held = report.commits + usize::from(landed.is_some());
    StoreError::State(format!(
        "another writer committed to {} during the promote: {what}, and the promote stopped there. The store is consistent (it holds the writer's commit and {held} branch commit(s) replayed by this run): finish the migrations with `memlane apply` on the store, or return to v{} with `memlane restore --to {} --reason ...`",
        store.uri(),
        report.version_before,
        report.version_before
    ))
}

/// Close the promote: one state-only commit naming the branch, and the migrations'
/// tags at their completing commits.
async fn finish(
    store: &mut Store,
    branch: &Store,
    origin: &BranchOrigin,
    report: &mut PromoteReport,
) -> Result<()> {
    let state = store.state().clone();
    let rows = store.count().await?;
    let mut entry = HistoryEntry::new(Action::Promote, now());
    entry.reason = Some(format!(
        "{} commit(s) of the branch replayed, branched at v{}",
        report.commits, report.branched_at
    ));
    entry.promoted_from = Some(BranchOrigin {
        uri: report.branch.clone(),
        version: branch.version(),
    });
    entry.branched_from = Some(origin.clone());
    entry.rows = Some((rows, rows));
    entry.active_space.clone_from(&state.active_space);
    report.version = store.commit_state(state, entry).await?;
    crate::migrate::ensure_tags(store).await?;
    Ok(())
}
