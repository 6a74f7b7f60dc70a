//! Reading memlane's record of a version back: state, entry and seal, checked against
//! each other; the newest sealed commit (the link of the next one); the head pointer.

use lance::Dataset;
use lance::dataset::transaction::{Operation, Transaction};
use memlane_core::seal::SEAL_KEY;
use memlane_core::state::{ENTRY_KEY, STATE_KEY};
use memlane_core::{HistoryEntry, Link, Seal, StoreState};
use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::sidecar::SideFiles;

/// memlane's record of one version.
#[derive(Debug, Clone, Default)]
pub(crate) struct Recorded {
    /// Lance version.
    pub(crate) version: u64,
    /// The version the commit was built on.
    pub(crate) read_version: u64,
    /// Lance operation (none when the version has no transaction).
    pub(crate) operation: Option<Operation>,
    /// The state it carries (parsed, and matching its seal).
    pub(crate) state: Option<StoreState>,
    /// Whether it carries a state text at all (even an unreadable one).
    pub(crate) has_state: bool,
    /// Its history entry.
    pub(crate) entry: Option<HistoryEntry>,
    /// Its seal, when it has one that matches its texts.
    pub(crate) seal: Option<Seal>,
    /// Why the record cannot be trusted (edited, unreadable).
    pub(crate) problem: Option<String>,
}

impl Recorded {
    /// Whether memlane wrote this commit.
    pub(crate) fn by_memlane(&self) -> bool {
        self.entry.is_some() || self.has_state || self.seal.is_some() || self.problem.is_some()
    }
}

/// Read and check the record of version `v` of `ds`.
pub(crate) async fn read(ds: &Dataset, v: u64) -> Result<Recorded> {
    let mut r = Recorded {
        version: v,
        ..Recorded::default()
    };
    let tx: Option<Transaction> = match ds.read_transaction_by_version(v).await {
        Ok(tx) => tx,
        Err(e) => {
            r.problem = Some(format!(
                "the transaction of version {v} cannot be read ({})",
                crate::error::lance_message(&e)
            ));
            return Ok(r);
        }
    };
    let Some(tx) = tx else { return Ok(r) };
    r.read_version = tx.read_version;
    let props = tx.transaction_properties.clone();
    r.operation = Some(tx.operation);
    let Some(p) = props else { return Ok(r) };
    let state = p.get(STATE_KEY).map(String::as_str);
    let entry = p.get(ENTRY_KEY).map(String::as_str);
    r.has_state = state.is_some();
    if let Some(seal) = p.get(SEAL_KEY) {
        match Seal::check(seal, state, entry) {
            Ok(s) => r.seal = Some(s),
            Err(e) => {
                r.problem = Some(format!("version {v}: {e}"));
                return Ok(r);
            }
        }
    }
    if let Some(s) = state {
        match StoreState::from_json(s) {
            Ok(st) => r.state = Some(st),
            Err(e) => r.problem = Some(format!("version {v}: its state cannot be read ({e})")),
        }
    }
    if let Some(e) = entry {
        match serde_json::from_str(e) {
            Ok(en) => r.entry = Some(en),
            Err(err) => {
                r.problem.get_or_insert(format!(
                    "version {v}: its history entry cannot be read ({err})"
                ));
            }
        }
    }
    Ok(r)
}

/// The newest sealed commit at or before `ds`'s version: what the next commit links to.
pub(crate) async fn tip(ds: &Dataset) -> Result<Option<Link>> {
    let mut v = ds.version_id();
    while v >= 1 {
        let r = read(ds, v).await?;
        if let Some(s) = &r.seal {
            return Ok(Some(s.link(v)));
        }
        if r.by_memlane() && r.problem.is_none() {
            // an unsealed memlane commit (written before seals): the chain starts after it
            return Ok(None);
        }
        v -= 1;
    }
    Ok(None)
}

/// The state at a version and whether it can be trusted.
#[derive(Debug, Clone, Default)]
pub(crate) struct Head {
    /// The newest trustworthy state at or before the version.
    pub(crate) state: Option<StoreState>,
    /// The version that state was committed at.
    pub(crate) state_version: Option<u64>,
    /// The newest commit whose record is broken, when it is newer than that state.
    pub(crate) broken: Option<(u64, String)>,
}

/// The memlane state at `ds`'s version: from the newest commit at or before it that
/// carries one (commits by other writers and memlane's own writers carry none). A
/// broken record on the way is reported, and the state comes from before it.
pub(crate) async fn head(ds: &Dataset) -> Result<Head> {
    let mut h = Head::default();
    let mut v = ds.version_id();
    while v >= 1 {
        let r = read(ds, v).await?;
        if let Some(p) = &r.problem {
            h.broken.get_or_insert((v, p.clone()));
        } else if let Some(st) = r.state.clone() {
            h.state = Some(st);
            h.state_version = Some(v);
            return Ok(h);
        }
        if let Some(Operation::Restore { version }) = r.operation
            && version < v
            && !r.by_memlane()
        {
            // an external restore: the state is the restored version's
            v = version;
            continue;
        }
        v -= 1;
    }
    Ok(h)
}

/// A memlane commit newer than `ds` that was noted but whose manifest is gone (deleted
/// by hand): (version, what is wrong).
pub(crate) async fn missing_head(ds: &Dataset) -> Option<(u64, String)> {
    let noted = noted_head(ds).await?;
    if noted.version <= ds.version_id() {
        return None;
    }
    // a commit that landed after `ds` was opened is not missing
    if ds.checkout_version(noted.version).await.is_ok() {
        return None;
    }
    Some((
        noted.version,
        format!(
            "version {} was committed by memlane but its manifest (_versions/) is gone, so the store opens at version {}",
            noted.version,
            ds.version_id()
        ),
    ))
}

/// [`head`] of the latest version, counting a noted commit whose manifest is gone as
/// broken (what opening a store reads).
pub(crate) async fn latest_head(ds: &Dataset) -> Result<Head> {
    let mut h = head(ds).await?;
    if let Some(m) = missing_head(ds).await {
        h.broken = Some(m);
    }
    Ok(h)
}

/// Every version's record, oldest first.
pub(crate) async fn walk(ds: &Dataset) -> Result<Vec<Recorded>> {
    let head = ds.version_id();
    let mut out = Vec::new();
    for v in ds.versions().await? {
        if v.version <= head {
            out.push(read(ds, v.version).await?);
        }
    }
    Ok(out)
}

/// The newest memlane commit as last noted (`_memlane/head.json`): a deleted manifest
/// shows as a version newer than the dataset's latest.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct NotedHead {
    /// Lance version.
    pub(crate) version: u64,
    /// Its seal's hash.
    #[serde(default)]
    pub(crate) seal: Option<String>,
}

/// The noted head, if any.
pub(crate) async fn noted_head(ds: &Dataset) -> Option<NotedHead> {
    let side = SideFiles::of(ds, ds.uri()).await.ok()?;
    let f = side.get(crate::sidecar::HEAD).await.ok()??;
    serde_json::from_slice(&f.bytes).ok()
}

/// The seal hash a sealed transaction carries (what [`note_head`] records).
pub(crate) fn seal_hash(tx: &Transaction) -> Option<String> {
    let p = tx.transaction_properties.as_ref()?;
    let s: Seal = serde_json::from_str(p.get(SEAL_KEY)?).ok()?;
    Some(s.hash)
}

/// Note `ds`, just committed with a seal of hash `seal`, as the newest memlane commit,
/// unless a newer one is noted (best-effort: the note only ever helps `verify` find a
/// deleted manifest).
pub(crate) async fn note_head(ds: &Dataset, seal: Option<String>) {
    let v = ds.version_id();
    if noted_head(ds).await.is_some_and(|h| h.version >= v) {
        return;
    }
    let note = NotedHead { version: v, seal };
    if let (Ok(side), Ok(body)) = (SideFiles::of(ds, ds.uri()).await, serde_json::to_vec(&note)) {
        let _ = side.put(crate::sidecar::HEAD, body).await;
    }
}
