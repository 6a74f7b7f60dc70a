//! `memlane delete`: delete the records matching a SQL predicate.

use anyhow::Result;
use serde_json::json;

use crate::cli::DeleteArgs;
use crate::exit::ExitStatus;
use crate::output::{Output, line};

/// Delete the matching records and report how many.
pub(crate) async fn run(args: DeleteArgs, out: Output) -> Result<ExitStatus> {
    let DeleteArgs { store, predicate } = args;
    let mut st = store.open().await?;
    let (n, v) = st.delete(&predicate).await?;
    out.emit(
        &json!({"deleted": n, "version": v}),
        line(format_args!("deleted {n} records at version {v}")),
    )?;
    Ok(ExitStatus::Ok)
}
