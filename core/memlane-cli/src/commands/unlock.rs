//! `memlane unlock`: remove a dead holder's migration lock.

use anyhow::Result;
use serde_json::json;

use crate::cli::UnlockArgs;
use crate::exit::ExitStatus;
use crate::output::{Output, line};

/// Remove the lock (only with `--force`: a usage error without) and report whose it
/// was.
#[allow(clippy::print_stderr)]
pub(crate) async fn run(args: UnlockArgs, out: Output) -> Result<ExitStatus> {
    let UnlockArgs {
        store,
        force,
        even_if_alive,
    } = args;
    if !force {
        eprintln!("unlock removes another process's lock; make sure it is dead, then pass --force");
        return Ok(ExitStatus::Usage);
    }
    let side = memlane_store::SideFiles::open(&store.store, &store.storage.parse()?).await?;
    let removed = memlane_store::lock::force_unlock(&side, even_if_alive).await?;
    let text = match &removed {
        Some(l) => format!("removed lock of {} (pid {} on {})", l.holder, l.pid, l.host),
        None => "no lock held".to_owned(),
    };
    out.emit(&json!({ "removed": removed }), line(text))?;
    Ok(ExitStatus::Ok)
}
