//! `memlane adopt`: declare an existing vector column as a space.

use anyhow::Result;
use serde_json::json;

use crate::cli::{AdoptArgs, parse_space};
use crate::exit::ExitStatus;
use crate::output::{Output, line};

/// Adopt the column as the space and report the new version.
pub(crate) async fn run(args: AdoptArgs, out: Output) -> Result<ExitStatus> {
    let AdoptArgs {
        store,
        space,
        column,
    } = args;
    let mut sp = parse_space(&space)?;
    if let Some(c) = column {
        sp.column = c;
    }
    let mut st = store.open().await?;
    let v = st.adopt(sp.clone()).await?;
    out.emit(
        &json!({"version": v, "space": sp}),
        line(format_args!(
            "adopted column `{}` as space {} at version {v}",
            sp.column,
            sp.identity()
        )),
    )?;
    Ok(ExitStatus::Ok)
}
