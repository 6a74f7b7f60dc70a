//! `memlane status`: version, rows, spaces, migrations, a running re-embed and the lock.

use std::fmt;

use anyhow::Result;
use memlane_store::Store;
use memlane_store::lock::LockInfo;
use memlane_store::memlane_core::Snapshot;
use serde_json::json;

use crate::cli::{StatusArgs, StoreArgs};
use crate::exit::ExitStatus;
use crate::output::{Output, spaces_json};

/// Show the store's status; with a migrations folder, how many of its migrations are
/// pending (a folder that disagrees with history is reported, not fatal, here).
pub(crate) async fn run(args: StatusArgs, out: Output) -> Result<ExitStatus> {
    let StatusArgs {
        store: StoreArgs { store },
        migrations,
    } = args;
    let st = Store::open(&store).await?;
    let snap = st.snapshot().await?;
    let lock = memlane_store::lock::read_lock(&store);
    let pending: Option<Result<usize, String>> = match &migrations {
        Some(dir) => Some(match memlane_store::read_folder(dir) {
            Ok(files) => st
                .plan(&files)
                .await
                .map(|p| p.migrations.len())
                .map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        }),
        None => None,
    };
    out.emit(
        &json!({
            "store": store, "version": snap.version, "rows": snap.rows,
            "spaces": spaces_json(&snap.state.spaces), "active_space": snap.state.active_space,
            "applied": snap.state.applied, "in_flight": snap.state.in_flight,
            "pending_contracts": snap.state.pending_contracts,
            "pending": pending.as_ref().and_then(|p| p.as_ref().ok()),
            "pending_error": pending.as_ref().and_then(|p| p.as_ref().err()),
            "lock": lock, "fields": snap.fields,
        }),
        fmt::from_fn(|f| text(f, &store, &snap, pending.as_ref(), lock.as_ref())),
    )?;
    Ok(ExitStatus::Ok)
}

/// The status as text, one line per fact.
fn text(
    f: &mut fmt::Formatter<'_>,
    store: &str,
    snap: &Snapshot,
    pending: Option<&Result<usize, String>>,
    lock: Option<&LockInfo>,
) -> fmt::Result {
    writeln!(f, "store    {store}")?;
    writeln!(f, "version  {}   rows {}", snap.version, snap.rows)?;
    for s in &snap.state.spaces {
        let mark = if snap.state.active_space.as_deref() == Some(s.name.as_str()) {
            "*"
        } else {
            " "
        };
        writeln!(f, "space  {mark} {}", s.identity())?;
    }
    if snap.state.spaces.is_empty() {
        writeln!(f, "spaces   none")?;
    }
    match snap.state.applied.last() {
        Some(a) => writeln!(
            f,
            "applied  {} migration(s), last {} at {}",
            snap.state.applied.len(),
            a.file,
            a.applied_at
        )?,
        None => writeln!(f, "applied  none")?,
    }
    if let Some(cp) = snap
        .state
        .in_flight
        .as_ref()
        .and_then(|f| f.checkpoint.clone())
    {
        let eta = cp.eta_secs().map_or("?".to_owned(), |s| format!("{s:.0}s"));
        writeln!(
            f,
            "RE-EMBED {} of `{}`: {:.1}% ({} of {} rows current), {} embedded, {:.0} rows/s, ETA {eta}, lag {} rows",
            cp.phase,
            cp.space,
            cp.percent(),
            cp.total - cp.remaining.min(cp.total),
            cp.total,
            cp.embedded,
            cp.rows_per_sec,
            cp.remaining
        )?;
    }
    if let Some(fl) = &snap.state.in_flight {
        writeln!(
            f,
            "IN FLIGHT {} — {}/{} steps committed; `memlane apply` resumes it",
            fl.file, fl.steps_done, fl.steps_total
        )?;
    }
    match pending {
        Some(Ok(p)) => writeln!(f, "pending  {p} migration(s)")?,
        Some(Err(e)) => writeln!(f, "pending  REFUSED: {e}")?,
        None => {}
    }
    for p in &snap.state.pending_contracts {
        writeln!(
            f,
            "contract `{}` after {} (retention {} of migration {:04})",
            p.space, p.due, p.retention, p.migration
        )?;
    }
    if let Some(l) = lock {
        writeln!(
            f,
            "LOCKED   by {} (pid {} on {}), lease until {}",
            l.holder,
            l.pid,
            l.host,
            l.expires.to_rfc3339()
        )?;
    }
    Ok(())
}
