//! `memlane status`: version, rows, spaces, migrations, a running re-embed and the lock
//! (the report and its text are the library's `Status`).

use anyhow::Result;

use crate::cli::StatusArgs;
use crate::exit::ExitStatus;
use crate::output::{Output, line};

/// Show the store's status; with a migrations folder, how many of its migrations are
/// pending (a folder that disagrees with history is reported, not fatal, here).
pub(crate) async fn run(args: StatusArgs, out: Output) -> Result<ExitStatus> {
    let StatusArgs { store, migrations } = args;
    let st = store.open().await?;
    let status = st.status(migrations.as_deref()).await?;
    out.emit(&status, line(&status))?;
    Ok(ExitStatus::Ok)
}
