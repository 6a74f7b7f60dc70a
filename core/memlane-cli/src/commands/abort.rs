//! `memlane abort`: abort the in-flight migration.

use anyhow::Result;
use serde_json::json;

use crate::cli::AbortArgs;
use crate::exit::ExitStatus;
use crate::output::{Output, line};

/// Abort the in-flight migration (recording why) and report the new version.
pub(crate) async fn run(args: AbortArgs, out: Output) -> Result<ExitStatus> {
    let AbortArgs { store, reason } = args;
    let mut st = store.open().await?;
    let v = st.abort(&reason).await?;
    out.emit(
        &json!({"version": v}),
        line(format_args!(
            "aborted the in-flight migration at version {v}; the store is as before it"
        )),
    )?;
    Ok(ExitStatus::Ok)
}
