//! `memlane rehearse`: a folder's pending migrations applied on a branch, reported, and
//! the branch deleted; the store is not touched.

use anyhow::Result;
use memlane_store::{MigrationFolder, RehearsalOutcome, RehearseOptions};

use crate::cli::RehearseArgs;
use crate::embedders;
use crate::exit::ExitStatus;
use crate::output::Output;

/// Rehearse and report; the exit status is the rehearsal's verdict.
pub(crate) async fn run(args: RehearseArgs, out: Output) -> Result<ExitStatus> {
    let st = args.store.open().await?;
    let folder = MigrationFolder::read(&args.migrations)?;
    let emb = embedders::for_folder(&args.embedders, &args.migrations, &folder.migrations)?;
    let r = memlane_store::rehearse(
        &st,
        folder,
        &emb,
        RehearseOptions {
            name: args.name,
            sample: args.sample,
            keep: args.keep,
            approve: args.approve,
            to: args.to,
        },
    )
    .await?;
    out.emit(&r, &r)?;
    Ok(match r.outcome {
        RehearsalOutcome::Pass => ExitStatus::Ok,
        RehearsalOutcome::Review => ExitStatus::NeedsReview,
        RehearsalOutcome::Blocked => ExitStatus::Blocked,
        RehearsalOutcome::Failed => ExitStatus::Failed,
    })
}
