//! `memlane`: version and migrate vector stores and agent memory.
//!
//! `cli` holds the command line as clap types, `commands` one module per command,
//! `output` the one way a command writes its result (text or `--json`), `exit` how a
//! run ends, `log` where the library's warnings go; `main` parses and dispatches.

mod cli;
mod commands;
mod embedders;
mod exit;
mod log;
mod metrics_server;
#[cfg(feature = "otlp")]
mod otlp;
mod output;

use std::process::ExitCode;

use clap::Parser;

use crate::cli::Cli;
use crate::exit::ExitStatus;
use crate::output::Output;

/// A closed pipe (`memlane history STORE | head`) ends the process quietly, as it
/// does for other command-line tools, instead of panicking in `print!`.
#[cfg(unix)]
fn default_sigpipe() {
    // SAFETY: resetting a signal's disposition to its default before any thread starts.
    #[allow(unsafe_code)]
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

#[allow(clippy::print_stderr)]
fn main() -> ExitCode {
    #[cfg(unix)]
    default_sigpipe();
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return ExitStatus::of_clap(&e).into();
        }
    };
    let _log = log::init();
    let out = Output::new(cli.output.json);
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitStatus::Failed.into();
        }
    };
    match rt.block_on(commands::run(cli, out)) {
        Ok(status) => status.into(),
        Err(e) => {
            let status = ExitStatus::of_error(&e);
            out.error(&e, status);
            status.into()
        }
    }
}
