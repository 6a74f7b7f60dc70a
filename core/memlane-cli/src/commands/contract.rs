//! `memlane contract`: drop an inactive space's columns, the contract of a re-embed.

use std::fmt;

use anyhow::Result;
use serde_json::json;

use crate::cli::ContractArgs;
use crate::exit::ExitStatus;
use crate::output::Output;

/// Drop `--space`, or every space due (`--due`), and report what was dropped and what
/// is still pending.
pub(crate) async fn run(args: ContractArgs, out: Output) -> Result<ExitStatus> {
    let ContractArgs {
        store,
        space,
        due,
        reason,
    } = args;
    let mut st = store.open().await?;
    let dropped: Vec<(String, u64)> = match space {
        Some(space) if !due => {
            let v = st.contract(&space, &reason).await?;
            vec![(space, v)]
        }
        _ => st.contract_due().await?,
    };
    let pending = &st.state().pending_contracts;
    let text = fmt::from_fn(|f| {
        for (space, v) in &dropped {
            writeln!(f, "dropped space {space} at version {v}")?;
        }
        if dropped.is_empty() {
            writeln!(f, "no space is due for contraction")?;
        }
        for p in pending {
            writeln!(
                f,
                "pending: `{}` is kept until {} ({})",
                p.space, p.due, p.retention
            )?;
        }
        Ok(())
    });
    out.emit(
        &json!({
            "dropped": dropped.iter().map(|(s, v)| json!({"space": s, "version": v})).collect::<Vec<_>>(),
            "pending": pending,
        }),
        text,
    )?;
    Ok(ExitStatus::Ok)
}
