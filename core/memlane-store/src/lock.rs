//! The migration lease lock: one migrator at a time, with expiry and heartbeat.
//!
//! The lock is a JSON file `_memlane/lock.json` inside the store directory, created
//! with `O_EXCL`. A holder renews its lease while it works; an expired lease may be
//! taken over; `memlane unlock --force` removes a dead holder's lock.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::error::{Result, StoreError};

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
}

/// A held lock; released on drop.
#[derive(Debug)]
pub struct LockGuard {
    path: PathBuf,
    token: String,
    stop: Arc<AtomicBool>,
    beat: Option<std::thread::JoinHandle<()>>,
}

/// Path of the lock file of a local store.
pub fn lock_path(uri: &str) -> PathBuf {
    crate::sidecar::path(uri, crate::sidecar::LOCK)
}

/// Read the current lock, if any.
pub fn read_lock(uri: &str) -> Option<LockInfo> {
    let text = std::fs::read_to_string(lock_path(uri)).ok()?;
    serde_json::from_str(&text).ok()
}

fn io(path: &Path, e: std::io::Error) -> StoreError {
    StoreError::Io {
        path: path.display().to_string(),
        source: e,
    }
}

fn write_info(path: &Path, info: &LockInfo, exclusive: bool) -> std::io::Result<()> {
    let body = serde_json::to_vec_pretty(info).unwrap_or_default();
    if exclusive {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(path)?;
        f.write_all(&body)?;
        f.sync_all()
    } else {
        // renew atomically: write a temp file, then rename over the lock
        let tmp = path.with_extension(format!("json.{}", std::process::id()));
        std::fs::write(&tmp, &body)?;
        std::fs::rename(&tmp, path)
    }
}

/// Take the lock for `holder` with a lease of `lease`, renewed every `lease / 3`
/// by a background thread until the guard is dropped.
pub fn acquire(uri: &str, holder: &str, lease: Duration) -> Result<LockGuard> {
    let path = lock_path(uri);
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| io(dir, e))?;
    }
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
    };
    match write_info(&path, &info, true) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            let held = read_lock(uri);
            // a holder on this host whose process is gone is dead, whatever its lease says
            let dead = |h: &LockInfo| {
                h.host == this_host()
                    && h.pid != std::process::id()
                    && !holder_alive(h.pid, h.start_time)
            };
            match held {
                Some(h) if h.expires > now && !dead(&h) => {
                    return Err(StoreError::LockHeld {
                        uri: uri.to_owned(),
                        holder: h.holder,
                        host: h.host,
                        pid: h.pid,
                        since: h.since.to_rfc3339(),
                        expires: h.expires.to_rfc3339(),
                    });
                }
                // expired (or unreadable) lease: take it over
                _ => {
                    std::fs::remove_file(&path).map_err(|e| io(&path, e))?;
                    write_info(&path, &info, true).map_err(|e| io(&path, e))?;
                }
            }
        }
        Err(e) => return Err(io(&path, e)),
    }
    let stop = Arc::new(AtomicBool::new(false));
    let beat = {
        let (stop, path, mut info) = (stop.clone(), path.clone(), info.clone());
        std::thread::spawn(move || {
            let step = lease / 3;
            let tick = Duration::from_millis(100).min(step);
            let mut waited = Duration::ZERO;
            while !stop.load(Ordering::Relaxed) {
                std::thread::sleep(tick);
                waited += tick;
                if waited < step {
                    continue;
                }
                waited = Duration::ZERO;
                // only renew a lock that is still ours
                let ours = std::fs::read_to_string(&path)
                    .ok()
                    .and_then(|t| serde_json::from_str::<LockInfo>(&t).ok())
                    .is_some_and(|l| l.token == info.token);
                if !ours {
                    break;
                }
                let now = Utc::now();
                info.heartbeat = now;
                info.expires = now + lease_c;
                let _ = write_info(&path, &info, false);
            }
        })
    };
    Ok(LockGuard {
        path,
        token: info.token,
        stop,
        beat: Some(beat),
    })
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
pub fn force_unlock(uri: &str, even_if_alive: bool) -> Result<Option<LockInfo>> {
    let info = read_lock(uri);
    if let Some(h) = info
        .as_ref()
        .filter(|h| !even_if_alive && holder_is_alive(h))
    {
        return Err(StoreError::LockAlive {
            uri: uri.to_owned(),
            holder: h.holder.clone(),
            pid: h.pid,
        });
    }
    let path = lock_path(uri);
    match std::fs::remove_file(&path) {
        Ok(()) => Ok(info),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io(&path, e)),
    }
}

impl Drop for LockGuard {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(b) = self.beat.take() {
            let _ = b.join();
        }
        let ours = std::fs::read_to_string(&self.path)
            .ok()
            .and_then(|t| serde_json::from_str::<LockInfo>(&t).ok())
            .is_some_and(|l| l.token == self.token);
        if ours {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_holder_refused_then_force_unlock() {
        let dir = tempfile::tempdir().unwrap();
        let uri = dir.path().to_str().unwrap();
        let g = acquire(uri, "first", Duration::from_secs(60)).unwrap();
        let e = acquire(uri, "second", Duration::from_secs(60)).unwrap_err();
        assert!(
            e.to_string().contains("first") && e.to_string().contains("unlock --force"),
            "{e}"
        );
        drop(g);
        let g2 = acquire(uri, "second", Duration::from_secs(60)).unwrap();
        // a live holder (this process) is refused unless asked for explicitly
        let e = force_unlock(uri, false).unwrap_err();
        assert!(e.to_string().contains("alive"), "{e}");
        assert_eq!(force_unlock(uri, true).unwrap().unwrap().holder, "second");
        drop(g2);
        assert!(read_lock(uri).is_none());
    }

    #[test]
    fn expired_lease_is_taken_over() {
        let dir = tempfile::tempdir().unwrap();
        let uri = dir.path().to_str().unwrap();
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
        };
        std::fs::create_dir_all(lock_path(uri).parent().unwrap()).unwrap();
        write_info(&lock_path(uri), &dead, true).unwrap();
        let g2 = acquire(uri, "alive", Duration::from_secs(60)).unwrap();
        assert_eq!(read_lock(uri).unwrap().holder, "alive");
        drop(g2);
        assert!(read_lock(uri).is_none());
    }

    #[test]
    fn a_zombie_holder_is_taken_over() {
        let dir = tempfile::tempdir().unwrap();
        let uri = dir.path().to_str().unwrap();
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
        };
        std::fs::create_dir_all(lock_path(uri).parent().unwrap()).unwrap();
        write_info(&lock_path(uri), &held, true).unwrap();
        assert!(acquire(uri, "next apply", Duration::from_secs(60)).is_err());
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
        let g = acquire(uri, "next apply", Duration::from_secs(60)).unwrap();
        assert_eq!(read_lock(uri).unwrap().holder, "next apply");
        drop(g);
        child.wait().unwrap();
    }

    #[test]
    fn a_reused_pid_is_not_the_holder() {
        let dir = tempfile::tempdir().unwrap();
        let uri = dir.path().to_str().unwrap();
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
        };
        std::fs::create_dir_all(lock_path(uri).parent().unwrap()).unwrap();
        write_info(&lock_path(uri), &stale, true).unwrap();
        let g = acquire(uri, "next apply", Duration::from_secs(60)).unwrap();
        assert_eq!(read_lock(uri).unwrap().holder, "next apply");
        drop(g);
    }
}
