//! `memlane diff A B`: two stores compared as the state they carry.

use anyhow::Result;
use memlane_store::Store;
use memlane_store::memlane_core::diff::DiffVerdict;

use crate::cli::DiffArgs;
use crate::exit::ExitStatus;
use crate::output::Output;

/// Compare and report; the exit status is the verdict (0 same, 4 differ, 3 incompatible).
pub(crate) async fn run(args: DiffArgs, out: Output) -> Result<ExitStatus> {
    let storage = args.storage.parse()?;
    let a = Store::open_with(&args.a, storage.clone()).await?;
    let b = Store::open_with(&args.b, storage).await?;
    let d = memlane_store::diff(&a, &b).await?;
    out.emit(&d, &d)?;
    Ok(match d.verdict {
        DiffVerdict::Same => ExitStatus::Ok,
        DiffVerdict::Differ => ExitStatus::NeedsReview,
        DiffVerdict::Incompatible => ExitStatus::Blocked,
    })
}
