//! [`ExitStatus`]: how a `memlane` run ends, as a process exit code.

use std::process::ExitCode;

use memlane_store::StoreError;
use memlane_store::memlane_core::CoreError;

/// How a run ends. The numbers are the CLI's contract (the `--help` text lists them);
/// an error's status comes from the library's one classification of errors
/// ([`ExitStatus::of_error`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ExitStatus {
    /// 0: done.
    Ok = 0,
    /// 1: failed (an error, or a declined confirmation).
    Failed = 1,
    /// 2: the command line is wrong or incomplete.
    Usage = 2,
    /// 3: blocked by lint, chain, gate or invariant.
    Blocked = 3,
    /// 4: a gate asks for a human's review.
    NeedsReview = 4,
}

impl ExitStatus {
    /// The process exit code.
    pub(crate) fn code(self) -> u8 {
        self as u8
    }

    /// The status of a failed run: blocked when the library classifies the error as one
    /// that blocks (its `ErrorKind::exit_code`), failed otherwise.
    pub(crate) fn of_error(e: &anyhow::Error) -> Self {
        let kind = e
            .downcast_ref::<StoreError>()
            .map(StoreError::kind)
            .or_else(|| e.downcast_ref::<CoreError>().map(CoreError::kind));
        if kind.is_some_and(|k| k.exit_code() == Self::Blocked.code()) {
            Self::Blocked
        } else {
            Self::Failed
        }
    }

    /// The status of a command line clap refused (usage) or answered itself (`--help`,
    /// `--version`: ok).
    pub(crate) fn of_clap(e: &clap::Error) -> Self {
        if e.use_stderr() {
            Self::Usage
        } else {
            Self::Ok
        }
    }
}

impl From<ExitStatus> for ExitCode {
    fn from(status: ExitStatus) -> Self {
        ExitCode::from(status.code())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_the_documented_numbers() {
        let codes = [
            ExitStatus::Ok,
            ExitStatus::Failed,
            ExitStatus::Usage,
            ExitStatus::Blocked,
            ExitStatus::NeedsReview,
        ]
        .map(ExitStatus::code);
        assert_eq!(codes, [0, 1, 2, 3, 4]);
    }

    #[test]
    fn an_error_blocks_by_its_kind() {
        let lint = anyhow::Error::from(CoreError::Lint {
            count: 1,
            details: String::new(),
        })
        .context("planning");
        assert_eq!(ExitStatus::of_error(&lint), ExitStatus::Blocked);
        let other = anyhow::anyhow!("no such file");
        assert_eq!(ExitStatus::of_error(&other), ExitStatus::Failed);
    }
}
