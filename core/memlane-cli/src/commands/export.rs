//! `memlane export`: export records to JSONL or Arrow IPC.

use anyhow::Result;
use serde_json::json;

use crate::cli::ExportArgs;
use crate::exit::ExitStatus;
use crate::output::{Output, line};

/// Export every record, as JSONL for a `.jsonl`/`.json` output and Arrow IPC otherwise,
/// and report how many.
pub(crate) async fn run(args: ExportArgs, out: Output) -> Result<ExitStatus> {
    let ExportArgs { store, output } = args;
    let st = store.open().await?;
    let n = memlane_store::export(&st, &output).await?;
    out.emit(
        &json!({"rows": n, "output": output}),
        line(format_args!("exported {n} records to {}", output.display())),
    )?;
    Ok(ExitStatus::Ok)
}
