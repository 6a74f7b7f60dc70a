//! `memlane tag`: tag a version, or list tags.

use std::fmt;

use anyhow::Result;
use serde_json::json;

use crate::cli::TagArgs;
use crate::exit::ExitStatus;
use crate::output::{Output, line};

/// Tag `--version` (the current one by default) as the name, or list the tags when no
/// name is given.
pub(crate) async fn run(args: TagArgs, out: Output) -> Result<ExitStatus> {
    let TagArgs {
        store,
        name,
        version,
    } = args;
    let st = store.open().await?;
    match name {
        Some(n) => {
            let v = st.tag(&n, version).await?;
            out.emit(
                &json!({"tag": n, "version": v}),
                line(format_args!("tagged version {v} as {n}")),
            )?;
        }
        None => {
            let tags = st.tags().await?;
            let text = fmt::from_fn(|f| {
                for (n, v) in &tags {
                    writeln!(f, "{v:>6}  {n}")?;
                }
                Ok(())
            });
            out.emit(&tags, text)?;
        }
    }
    Ok(ExitStatus::Ok)
}
