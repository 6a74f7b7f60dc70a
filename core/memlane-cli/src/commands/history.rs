//! `memlane history`: versions with what memlane recorded for each.

use std::fmt;

use anyhow::Result;

use crate::cli::HistoryArgs;
use crate::exit::ExitStatus;
use crate::output::Output;

/// List the versions, one line each: number, time, entry (or the operation of a
/// commit memlane did not make) and tags.
pub(crate) async fn run(args: HistoryArgs, out: Output) -> Result<ExitStatus> {
    let HistoryArgs { store } = args;
    let st = store.open().await?;
    let h = st.history().await?;
    let text = fmt::from_fn(|f| {
        for item in &h {
            let what = match &item.entry {
                None => format!("{} (not by memlane)", item.operation),
                Some(e) => e.to_string(),
            };
            let tags = if item.tags.is_empty() {
                String::new()
            } else {
                format!("  [{}]", item.tags.join(", "))
            };
            writeln!(f, "v{:<4} {}  {what}{tags}", item.version, item.timestamp)?;
        }
        Ok(())
    });
    out.emit(&h, text)?;
    Ok(ExitStatus::Ok)
}
