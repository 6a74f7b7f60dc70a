//! The migration lease lock: one migrator at a time, with expiry and heartbeat.
//!
//! The lock is a JSON file `_memlane/lock.json` on the store's object store, created
//! only if absent (`O_EXCL` on a local disk, a conditional put on S3, GCS or Azure). A
//! holder renews its lease while it works; an expired lease may be taken over;
//! `memlane unlock --force` removes a dead holder's lock. A backend that cannot create
//! conditionally is refused rather than run unlocked.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::error::{Result, StoreError};
use crate::sidecar::{LOCK, Put, SideFiles, StorageOptions};

/// What the lock file records.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct LockInfo {
    /// Who holds it (e.g. `memlane apply`).
    pub holder: String,
    /// Host name.
    pub host: String,
    /// Process id.
    pub pid: u32,
    /// Unique token of this holder.
    pub token: String,
    /// When it was taken.
    pub since: DateTime<Utc>,
    /// Last heartbeat.
    pub heartbeat: DateTime<Utc>,
    /// Lease expiry.
    pub expires: DateTime<Utc>,
    /// Start time of the holder process (Linux clock ticks since boot), so a reused
    /// pid is not mistaken for the holder.
    #[serde(default)]
    pub start_time: Option<u64>,
    /// What the holder is doing (e.g. the compatibility sample of a re-embed), kept
    /// current by its heartbeat a few seconds behind, so `status` can say it before the
    /// first commit does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub activity: Option<String>,
}

/// A held lock: renewed by a heartbeat thread, released when dropped.
///
/// The heartbeat runs on its own thread with its own runtime and its own connection to
/// the object store, so it renews while the caller's threads block in an embedder, and
/// the release on drop needs no async context.
#[derive(Debug)]
pub struct LockGuard {
    stop: Arc<AtomicBool>,
    lost: Arc<AtomicBool>,
    activity: Activity,
    beat: Option<std::thread::JoinHandle<()>>,
}

/// The holder's current activity and whether the lock file has it yet.
pub(crate) type Activity = Arc<std::sync::Mutex<(Option<String>, bool)>>;

/// How soon a changed activity reaches the lock file.
const ACTIVITY_EVERY: Duration = Duration::from_secs(2);

impl LockGuard {
    /// Say what the holder is doing (written with the next heartbeat, at most
    /// [`ACTIVITY_EVERY`] later).
    pub fn set_activity(&self, what: impl Into<String>) {
        if let Ok(mut a) = self.activity.lock() {
            *a = (Some(what.into()), true);
        }
    }

    /// A handle that sets the activity from elsewhere (a progress callback).
    pub(crate) fn activity(&self) -> Activity {
        self.activity.clone()
    }

    /// Whether the lease was lost (taken over after it expired, or removed by
    /// `unlock --force`) while held.
    pub fn lost(&self) -> bool {
        self.lost.load(Ordering::Relaxed)
    }
}

/// Read the current lock, if any (an unreadable lock file reads as none).
pub async fn read_lock(side: &SideFiles) -> Option<LockInfo> {
    let f = side.get(LOCK).await.ok()??;
    serde_json::from_slice(&f.bytes).ok()
}

fn body(info: &LockInfo) -> Vec<u8> {
    serde_json::to_vec_pretty(info).unwrap_or_default()
}

fn unsupported(side: &SideFiles, what: &str) -> StoreError {
    StoreError::LockUnsupported {
        uri: side.display(LOCK),
        reason: what.to_owned(),
    }
}

/// Refuse a backend that does not honour create-if-absent: without it two migrators
/// could both "take" the lock. (Local disks and S3, GCS and Azure honour it; some
/// S3-compatible servers ignore `If-None-Match`.)
async fn check_conditional_writes(side: &SideFiles) -> Result<()> {
    if side.is_local() {
        return Ok(());
    }
    let probe = format!("lock.probe-{}", uuid::Uuid::new_v4());
    let first = side.create(&probe, b"probe".to_vec()).await?;
    let second = if first == Put::Done {
        side.create(&probe, b"probe".to_vec()).await?
    } else {
        first
    };
    side.delete(&probe).await?;
    match (first, second) {
        (Put::Done, Put::Lost) => Ok(()),
        (Put::Unsupported, _) | (_, Put::Unsupported) => Err(unsupported(
            side,
            "the object store does not support conditional writes (create-if-absent)",
        )),
        _ => Err(unsupported(
            side,
            "the object store accepted a second create-if-absent of the same object (it ignores `If-None-Match`)",
        )),
    }
}

/// Take the lock for `holder` with a lease of `lease`, renewed every `lease / 3`
/// by a background thread until the guard is dropped.
///
/// The lock file is created only if absent (`O_EXCL` on a local disk, a conditional
/// put on an object store); an expired lease, or one whose holder is dead on this
/// host, is taken over (on an object store by a conditional update of the very record
/// read, so two takers cannot both win). `storage` reaches the store for the heartbeat.
pub async fn acquire(
    side: &SideFiles,
    storage: &StorageOptions,
    holder: &str,
    lease: Duration,
) -> Result<LockGuard> {
    check_conditional_writes(side).await?;
    let now = Utc::now();
    let lease_c = chrono::Duration::from_std(lease).unwrap_or(chrono::Duration::seconds(60));
    let info = LockInfo {
        holder: holder.to_owned(),
        host: this_host(),
        pid: std::process::id(),
        token: uuid::Uuid::new_v4().to_string(),
        since: now,
        heartbeat: now,
        expires: now + lease_c,
        start_time: process_start(std::process::id()),
        activity: None,
    };
    take(side, &info, now).await?;
    let stop = Arc::new(AtomicBool::new(false));
    let lost = Arc::new(AtomicBool::new(false));
    let activity: Activity = Arc::new(std::sync::Mutex::new((None, false)));
    let beat = Heartbeat {
        uri: side.uri().to_owned(),
        storage: storage.clone(),
        info,
        lease,
        stop: stop.clone(),
        lost: lost.clone(),
        activity: activity.clone(),
    }
    .start()
    .map_err(|e| StoreError::Internal(format!("the lock's heartbeat did not start: {e}")))?;
    Ok(LockGuard {
        stop,
        lost,
        activity,
        beat: Some(beat),
    })
}

/// Write `info` as the lock: create it, or take over a lease that ended.
async fn take(side: &SideFiles, info: &LockInfo, now: DateTime<Utc>) -> Result<()> {
    // a few rounds: a holder may release, or another taker win, between our steps
    for _ in 0..4 {
        match side.create(LOCK, body(info)).await? {
            Put::Done if holds(side, info).await? => return Ok(()),
            Put::Done => continue, // overwritten at once: a server without atomic puts
            Put::Unsupported => {
                return Err(unsupported(
                    side,
                    "the object store does not support conditional writes (create-if-absent)",
                ));
            }
            Put::Lost => {}
        }
        let Some(current) = side.get(LOCK).await? else {
            continue; // released meanwhile
        };
        let held: Option<LockInfo> = serde_json::from_slice(&current.bytes).ok();
        // a holder on this host whose process is gone is dead, whatever its lease says
        let dead = |h: &LockInfo| {
            h.host == this_host()
                && h.pid != std::process::id()
                && !holder_alive(h.pid, h.start_time)
        };
        if let Some(h) = held.filter(|h| h.expires > now && !dead(h)) {
            return Err(StoreError::LockHeld {
                uri: side.uri().to_owned(),
                holder: h.holder,
                host: h.host,
                pid: h.pid,
                since: h.since.to_rfc3339(),
                expires: h.expires.to_rfc3339(),
            });
        }
        // expired, dead or unreadable: take it over
        match side.update(LOCK, body(info), current.version).await? {
            Put::Done if holds(side, info).await? => return Ok(()),
            Put::Done => {}
            Put::Lost => {} // another taker won: the next round reports it
            Put::Unsupported => side.delete(LOCK).await?, // local disk: remove, then create
        }
    }
    Err(StoreError::Conflict {
        what: format!("taking the lock {}", side.display(LOCK)),
        retries: 4,
        message: "another migrator took or released it at each try".into(),
    })
}

/// Whether the lock read back is `info`'s: a write reported done is checked, because a
/// server whose conditional puts are not atomic under races (moto's, for one) can
/// let two creates succeed, the later one overwriting.
async fn holds(side: &SideFiles, info: &LockInfo) -> Result<bool> {
    Ok(side
        .get(LOCK)
        .await?
        .and_then(|f| serde_json::from_slice::<LockInfo>(&f.bytes).ok())
        .is_some_and(|l| l.token == info.token))
}

/// The lease renewer of a held lock.
struct Heartbeat {
    uri: String,
    storage: StorageOptions,
    info: LockInfo,
    lease: Duration,
    stop: Arc<AtomicBool>,
    lost: Arc<AtomicBool>,
    activity: Activity,
}

impl Heartbeat {
    fn start(self) -> std::io::Result<std::thread::JoinHandle<()>> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        std::thread::Builder::new()
            .name("memlane-lock".into())
            .spawn(move || rt.block_on(self.run()))
    }

    async fn run(mut self) {
        let Ok(side) = SideFiles::open(&self.uri, &self.storage).await else {
            return;
        };
        let step = self.lease / 3;
        let tick = Duration::from_millis(100).min(step);
        let mut waited = Duration::ZERO;
        while !self.stop.load(Ordering::Relaxed) {
            tokio::time::sleep(tick).await;
            waited += tick;
            if waited < step && !(waited >= ACTIVITY_EVERY && self.take_activity()) {
                continue;
            }
            self.take_activity();
            waited = Duration::ZERO;
            if !self.renew(&side).await {
                self.lost.store(true, Ordering::Relaxed);
                return;
            }
        }
        // released: remove the lock if it is still ours
        if let Ok(Some(f)) = side.get(LOCK).await
            && self.ours(&f.bytes)
        {
            let _ = side.delete(LOCK).await;
        }
    }

    /// Move a changed activity into the lock info; whether there was one.
    fn take_activity(&mut self) -> bool {
        let Ok(mut a) = self.activity.lock() else {
            return false;
        };
        if !a.1 {
            return false;
        }
        a.1 = false;
        self.info.activity.clone_from(&a.0);
        true
    }

    fn ours(&self, bytes: &[u8]) -> bool {
        serde_json::from_slice::<LockInfo>(bytes).is_ok_and(|l| l.token == self.info.token)
    }

    /// Push the lease forward; false when the lock is no longer ours. A failed request
    /// is tried again at the next beat (the lease outlasts two of them).
    async fn renew(&mut self, side: &SideFiles) -> bool {
        let current = match side.get(LOCK).await {
            Ok(Some(f)) => f,
            Ok(None) => return false,
            Err(_) => return true,
        };
        if !self.ours(&current.bytes) {
            return false;
        }
        let now = Utc::now();
        self.info.heartbeat = now;
        self.info.expires =
            now + chrono::Duration::from_std(self.lease).unwrap_or(chrono::Duration::seconds(60));
        match side.update(LOCK, body(&self.info), current.version).await {
            Ok(Put::Done) | Err(_) => true,
            Ok(Put::Lost) => false,
            // local disk: an atomic replace of the file just read as ours
            Ok(Put::Unsupported) => {
                let _ = side.put(LOCK, body(&self.info)).await;
                true
            }
        }
    }
}

/// Whether a process with this pid exists on this host.
fn holder_alive(pid: u32, start_time: Option<u64>) -> bool {
    if !cfg!(target_os = "linux") {
        return true;
    }
    match (process_start(pid), start_time) {
        (None, _) => false,
        // the pid exists: it is the holder unless it started at another time (reused)
        (Some(now), Some(then)) => now == then,
        (Some(_), None) => true,
    }
}

/// Start time of a live process (field 22 of `/proc/<pid>/stat`, clock ticks since
/// boot); `None` when there is no such process or it has exited and waits to be reaped
/// (a zombie, state `Z`, or dead, `X`): such a holder does no more work.
fn process_start(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // the command name (field 2) may hold spaces; fields after its closing paren are plain
    let rest = &stat[stat.rfind(')')? + 2..];
    let mut fields = rest.split_whitespace();
    if matches!(fields.next(), Some("Z" | "X" | "x")) {
        return None;
    }
    fields.nth(18)?.parse().ok()
}

/// This machine's host name, as locks record it.
fn this_host() -> String {
    hostname::get()
        .map(|h| h.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// Whether the lock's holder runs on this host and is alive.
pub fn holder_is_alive(info: &LockInfo) -> bool {
    info.host == this_host() && holder_alive(info.pid, info.start_time)
}

/// Remove the lock (`memlane unlock --force`). Returns the removed lock. A holder alive
/// on this host is refused unless `even_if_alive`: removing its lock would let a second
/// migrator run beside it.
pub async fn force_unlock(side: &SideFiles, even_if_alive: bool) -> Result<Option<LockInfo>> {
    let info = read_lock(side).await;
    if let Some(h) = info
        .as_ref()
        .filter(|h| !even_if_alive && holder_is_alive(h))
    {
        return Err(StoreError::LockAlive {
            uri: side.uri().to_owned(),
            holder: h.holder.clone(),
            pid: h.pid,
        });
    }
    let existed = side.get(LOCK).await?.is_some();
    side.delete(LOCK).await?;
    Ok(if existed { info } else { None })
}

impl Drop for LockGuard {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(b) = self.beat.take() {
            // the heartbeat thread removes the lock as it ends
            let _ = b.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "multi_thread")]
    async fn second_holder_refused_then_force_unlock() {
        let dir = tempfile::tempdir().unwrap();
        let uri = dir.path().to_str().unwrap();
        let side = SideFiles::open(uri, &StorageOptions::new()).await.unwrap();
        let g = acquire(
            &side,
            &StorageOptions::new(),
            "first",
            Duration::from_secs(60),
        )
        .await
        .unwrap();
        let e = acquire(
            &side,
            &StorageOptions::new(),
            "second",
            Duration::from_secs(60),
        )
        .await
        .unwrap_err();
        assert!(
            e.to_string().contains("first") && e.to_string().contains("unlock --force"),
            "{e}"
        );
        drop(g);
        let g2 = acquire(
            &side,
            &StorageOptions::new(),
            "second",
            Duration::from_secs(60),
        )
        .await
        .unwrap();
        // a live holder (this process) is refused unless asked for explicitly
        let e = force_unlock(&side, false).await.unwrap_err();
        assert!(e.to_string().contains("alive"), "{e}");
        assert_eq!(
            force_unlock(&side, true).await.unwrap().unwrap().holder,
            "second"
        );
        drop(g2);
        assert!(read_lock(&side).await.is_none());
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn expired_lease_is_taken_over() {
        let dir = tempfile::tempdir().unwrap();
        let uri = dir.path().to_str().unwrap();
        let side = SideFiles::open(uri, &StorageOptions::new()).await.unwrap();
        // a crashed holder: its lease ran out and nobody renews it
        let past = Utc::now() - chrono::Duration::seconds(10);
        let dead = LockInfo {
            holder: "dead".into(),
            host: "h".into(),
            pid: 1,
            token: "t".into(),
            since: past,
            heartbeat: past,
            expires: past,
            start_time: None,
            activity: None,
        };
        assert_eq!(side.create(LOCK, body(&dead)).await.unwrap(), Put::Done);
        let g2 = acquire(
            &side,
            &StorageOptions::new(),
            "alive",
            Duration::from_secs(60),
        )
        .await
        .unwrap();
        assert_eq!(read_lock(&side).await.unwrap().holder, "alive");
        drop(g2);
        assert!(read_lock(&side).await.is_none());
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn a_zombie_holder_is_taken_over() {
        let dir = tempfile::tempdir().unwrap();
        let uri = dir.path().to_str().unwrap();
        let side = SideFiles::open(uri, &StorageOptions::new()).await.unwrap();
        // a holder killed but not yet reaped by its parent: its pid still exists
        let mut child = std::process::Command::new("sleep")
            .arg("60")
            .spawn()
            .unwrap();
        let pid = child.id();
        let start = process_start(pid);
        assert!(start.is_some());
        let now = Utc::now();
        let host = this_host();
        let held = LockInfo {
            holder: "killed apply".into(),
            host,
            pid,
            token: "t".into(),
            since: now,
            heartbeat: now,
            expires: now + chrono::Duration::seconds(60),
            start_time: start,
            activity: None,
        };
        assert_eq!(side.create(LOCK, body(&held)).await.unwrap(), Put::Done);
        assert!(
            acquire(
                &side,
                &StorageOptions::new(),
                "next apply",
                Duration::from_secs(60)
            )
            .await
            .is_err()
        );
        child.kill().unwrap();
        // not reaped yet: /proc/<pid>/stat says `Z`
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while process_start(pid).is_some() && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        assert!(
            std::fs::metadata(format!("/proc/{pid}")).is_ok(),
            "reaped too early"
        );
        let g = acquire(
            &side,
            &StorageOptions::new(),
            "next apply",
            Duration::from_secs(60),
        )
        .await
        .unwrap();
        assert_eq!(read_lock(&side).await.unwrap().holder, "next apply");
        drop(g);
        child.wait().unwrap();
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn a_reused_pid_is_not_the_holder() {
        let dir = tempfile::tempdir().unwrap();
        let uri = dir.path().to_str().unwrap();
        let side = SideFiles::open(uri, &StorageOptions::new()).await.unwrap();
        let now = Utc::now();
        // pid 1 exists, but it started at another time than the recorded holder
        let host = this_host();
        let stale = LockInfo {
            holder: "killed apply".into(),
            host,
            pid: 1,
            token: "t".into(),
            since: now,
            heartbeat: now,
            expires: now + chrono::Duration::seconds(60),
            start_time: process_start(1).map(|t| t + 1),
            activity: None,
        };
        assert_eq!(side.create(LOCK, body(&stale)).await.unwrap(), Put::Done);
        let g = acquire(
            &side,
            &StorageOptions::new(),
            "next apply",
            Duration::from_secs(60),
        )
        .await
        .unwrap();
        assert_eq!(read_lock(&side).await.unwrap().holder, "next apply");
        drop(g);
    }
}
