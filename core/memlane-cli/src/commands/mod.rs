//! The commands, one module each (a command is a module: its `run` takes the command's
//! argument struct from `cli` and an [`Output`], writes its result through the output
//! and returns how the run ends). [`run`] dispatches to them.

mod abort;
mod add;
mod adopt;
mod apply;
mod branch;
mod bundle;
mod ci;
mod compat;
mod contract;
mod delete;
mod diff;
mod export;
mod export_sample;
mod history;
mod init;
mod lint;
mod plan;
mod rehearse;
mod repair;
mod restore;
mod review;
mod search;
mod set_embedder;
mod status;
mod tag;
mod unlock;
mod upsert;
mod validate;
mod verify;

use anyhow::Result;

use crate::cli::{Cli, Cmd};
use crate::embedders;
use crate::exit::ExitStatus;
use crate::output::Output;

/// Run the command the command line names.
pub(crate) async fn run(cli: Cli, out: Output) -> Result<ExitStatus> {
    embedders::set_timeout(cli.timeout.embedder_timeout)?;
    match cli.cmd {
        Cmd::Init(args) => init::run(args, out).await,
        Cmd::Abort(args) => abort::run(args, out).await,
        Cmd::Contract(args) => contract::run(args, out).await,
        Cmd::Upsert(args) => upsert::run(args, out).await,
        Cmd::Delete(args) => delete::run(args, out).await,
        Cmd::Adopt(args) => adopt::run(args, out).await,
        Cmd::Status(args) => status::run(args, out).await,
        Cmd::Plan(args) => plan::run(args, out).await,
        Cmd::Lint(args) => lint::run(args, out).await,
        Cmd::Apply(args) => apply::run(args, out).await,
        Cmd::Compat(args) => compat::run(args, out).await,
        Cmd::History(args) => history::run(args, out).await,
        Cmd::Verify(args) => verify::run(args, out).await,
        Cmd::Validate(args) => validate::run(args, out).await,
        Cmd::Tag(args) => tag::run(args, out).await,
        Cmd::Branch(cmd) => branch::run(cmd, out).await,
        Cmd::Rehearse(args) => rehearse::run(args, out).await,
        Cmd::Diff(args) => diff::run(args, out).await,
        Cmd::Ci(args) => ci::run(args, out).await,
        Cmd::Bundle(args) => bundle::run(args, out).await,
        Cmd::Unbundle(args) => bundle::unbundle(args, out).await,
        Cmd::BundleKey => bundle::key(out),
        Cmd::Restore(args) => restore::run(args, out).await,
        Cmd::Unlock(args) => unlock::run(args, out).await,
        Cmd::Repair(args) => repair::run(args, out).await,
        Cmd::Add(args) => add::run(args, out).await,
        Cmd::Export(args) => export::run(args, out).await,
        Cmd::ExportSample(args) => export_sample::run(args, out).await,
        Cmd::Review(args) => review::run(args, out),
        Cmd::Search(args) => search::run(args, out).await,
        Cmd::SetEmbedder(args) => set_embedder::run(args, out).await,
    }
}
