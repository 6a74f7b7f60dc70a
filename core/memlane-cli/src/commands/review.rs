//! `memlane review`: review a folder's pending migrations on an exported sample.

use anyhow::Result;
use memlane_store::memlane_core::Verdict;

use crate::cli::ReviewArgs;
use crate::exit::ExitStatus;
use crate::output::Output;

/// Show the review; the verdict is the exit status (blocked, needs review, ok).
pub(crate) fn run(args: ReviewArgs, out: Output) -> Result<ExitStatus> {
    let ReviewArgs {
        sample,
        migrations,
        k,
    } = args;
    let r = memlane_store::review_sample(&sample, &migrations, k)?;
    out.emit(&r, &r)?;
    Ok(match r.verdict {
        Verdict::Block => ExitStatus::Blocked,
        Verdict::Review => ExitStatus::NeedsReview,
        Verdict::Pass => ExitStatus::Ok,
    })
}
