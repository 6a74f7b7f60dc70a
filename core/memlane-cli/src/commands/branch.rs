//! `memlane branch create|list|delete|promote`: branches of a store for rehearsals.

use std::fmt;

use anyhow::Result;
use serde_json::json;

use crate::cli::BranchCmd;
use crate::exit::ExitStatus;
use crate::output::{Output, line};

/// Run a `branch` subcommand.
pub(crate) async fn run(cmd: BranchCmd, out: Output) -> Result<ExitStatus> {
    match cmd {
        BranchCmd::Create(a) => {
            let st = a.store.open().await?;
            let b = st.branch(&a.name, a.at).await?;
            out.emit(
                &json!({"branch": a.name, "uri": b.uri(), "version": b.version(), "from_version": a.at.unwrap_or(st.version())}),
                line(format_args!(
                    "branch {} of {} at version {} is at {}",
                    a.name,
                    st.uri(),
                    a.at.unwrap_or(st.version()),
                    b.uri()
                )),
            )?;
        }
        BranchCmd::List(a) => {
            let st = a.store.open().await?;
            let list = st.branches().await?;
            let text = fmt::from_fn(|f| {
                if list.is_empty() {
                    return writeln!(f, "no branches");
                }
                for b in &list {
                    if !b.complete {
                        writeln!(
                            f,
                            "{:<24} incomplete (a killed `branch create`): `memlane branch delete` it  {}",
                            b.name, b.uri
                        )?;
                        continue;
                    }
                    writeln!(
                        f,
                        "{:<24} from v{:<6} now v{:<6} {} migration(s)  {}  {}",
                        b.name, b.from_version, b.version, b.applied, b.created_at, b.uri
                    )?;
                }
                Ok(())
            });
            out.emit(&list, text)?;
        }
        BranchCmd::Delete(a) => {
            let st = a.store.open().await?;
            st.delete_branch(&a.name).await?;
            out.emit(
                &json!({"deleted": a.name}),
                line(format_args!("deleted branch {}", a.name)),
            )?;
        }
        BranchCmd::Promote(a) => {
            let mut st = a.store.open().await?;
            let opts = memlane_store::PromoteOptions { keep: a.keep };
            let report = memlane_store::promote(&mut st, &a.name, &opts).await?;
            out.emit(&report, &report)?;
        }
    }
    Ok(ExitStatus::Ok)
}
