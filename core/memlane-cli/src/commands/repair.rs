//! `memlane repair`: record a deliberate edit of an applied migration.

use anyhow::Result;
use serde_json::json;

use crate::cli::RepairArgs;
use crate::exit::ExitStatus;
use crate::output::{Output, line};

/// Accept the current file of migration `--accept` (recording why) and report the
/// version that records it.
pub(crate) async fn run(args: RepairArgs, out: Output) -> Result<ExitStatus> {
    let RepairArgs {
        store,
        migrations,
        accept,
        reason,
    } = args;
    let mut st = store.open().await?;
    let v = st
        .repair(&memlane_store::read_folder(&migrations)?, accept, &reason)
        .await?;
    out.emit(
        &json!({"version": v, "accepted": accept}),
        line(format_args!(
            "accepted the current file of migration {accept:04} at version {v}"
        )),
    )?;
    Ok(ExitStatus::Ok)
}
