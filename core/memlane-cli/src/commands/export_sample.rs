//! `memlane export-sample`: write a sample of the store for review outside it.

use anyhow::Result;
use serde_json::json;

use crate::cli::ExportSampleArgs;
use crate::embedders;
use crate::exit::ExitStatus;
use crate::output::{Output, line};

/// Write the sample (with the folder's pending re-embeds embedded) and describe it.
pub(crate) async fn run(args: ExportSampleArgs, out: Output) -> Result<ExitStatus> {
    let ExportSampleArgs {
        store,
        migrations,
        rows,
        output,
        embedders,
    } = args;
    let st = store.open().await?;
    let files = match &migrations {
        Some(d) => Some(memlane_store::read_folder(d)?),
        None => None,
    };
    let emb = embedders::load(&embedders, migrations.as_deref())?;
    let info = st
        .export_sample(&output, rows, files.as_deref(), &emb)
        .await?;
    out.emit(
        &json!({"output": output, "sample": info}),
        line(format_args!("{info}\nwrote {}", output.display())),
    )?;
    Ok(ExitStatus::Ok)
}
