//! `memlane ci`: the pre-deploy check, with the outputs CI runners read.

use std::io::Write;

use anyhow::{Context, Result};
use memlane_store::memlane_core::compat::Verdict;

use crate::cli::CiArgs;
use crate::embedders;
use crate::exit::ExitStatus;
use crate::output::Output;

/// Run the check; write the summary and annotations; the exit status is the verdict.
pub(crate) async fn run(args: CiArgs, out: Output) -> Result<ExitStatus> {
    let st = args.store.open().await?;
    let folder = memlane_store::MigrationFolder::read(&args.migrations)?;
    let emb = embedders::for_folder(&args.embedders, &args.migrations, &folder.migrations)?;
    let r = memlane_store::ci(&st, &args.migrations, &emb, args.sample_rows).await?;
    let md = r.markdown();
    let targets = std::env::var_os("GITHUB_STEP_SUMMARY")
        .filter(|v| !v.is_empty())
        .map(std::path::PathBuf::from)
        .into_iter()
        .chain(args.summary.clone());
    for path in targets {
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .with_context(|| format!("cannot write the summary to {}", path.display()))?;
        f.write_all(md.as_bytes())
            .with_context(|| format!("cannot write the summary to {}", path.display()))?;
    }
    if std::env::var("GITHUB_ACTIONS").is_ok_and(|v| v == "true") {
        out.workflow_commands(r.annotations());
    }
    out.emit(&r, &md)?;
    Ok(match r.verdict {
        Verdict::Pass => ExitStatus::Ok,
        Verdict::Review => ExitStatus::NeedsReview,
        Verdict::Block => ExitStatus::Blocked,
    })
}
