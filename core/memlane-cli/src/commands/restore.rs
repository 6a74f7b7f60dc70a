//! `memlane restore`: commit a new version equal to an old one (forward-only).

use anyhow::Result;
use serde_json::json;

use crate::cli::RestoreArgs;
use crate::exit::ExitStatus;
use crate::output::{Output, line};

/// Restore the version or tag `--to` as a new version and report it.
pub(crate) async fn run(args: RestoreArgs, out: Output) -> Result<ExitStatus> {
    let RestoreArgs { store, to, reason } = args;
    let mut st = store.open().await?;
    let v = st.restore(&to, &reason).await?;
    let rows = st.count().await?;
    out.emit(
        &json!({"version": v, "restored_from": to}),
        line(format_args!(
            "restored {to} as new version {v} ({rows} rows)"
        )),
    )?;
    Ok(ExitStatus::Ok)
}
