//! [`Output`]: the one way a command writes to stdout, so `--json` cannot be forgotten:
//! every result goes through [`Output::emit`] with both its JSON and its text form.
//! Nothing else in the crate prints to stdout (clippy's `print_stdout` is allowed here
//! only).
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::fmt::{self, Display};

use anyhow::Result;
use serde::Serialize;
use serde_json::json;

use crate::exit::ExitStatus;

/// Where a command's result goes: pretty JSON with `--json`, text otherwise.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Output {
    json: bool,
}

impl Output {
    /// Output in JSON (`--json`) or text.
    pub(crate) fn new(json: bool) -> Self {
        Self { json }
    }

    /// Whether `--json` was given (for a command whose JSON says more than its text,
    /// e.g. the report behind an error).
    pub(crate) fn is_json(self) -> bool {
        self.json
    }

    /// Emit a command's result: `json` pretty-printed with `--json`, else `text` exactly
    /// as it formats (end it with a newline, e.g. with [`line`]).
    pub(crate) fn emit(self, json: &(impl Serialize + ?Sized), text: impl Display) -> Result<()> {
        if self.json {
            println!("{}", serde_json::to_string_pretty(json)?);
        } else {
            print!("{text}");
        }
        Ok(())
    }

    /// Text shown ahead of the result (`apply` shows its plan before asking to go
    /// on); nothing with `--json`, whose output is the result alone.
    pub(crate) fn note(self, text: impl Display) {
        if !self.json {
            print!("{text}");
        }
    }

    /// A status line on stderr (never part of the result): where a side service listens.
    pub(crate) fn status(self, text: impl Display) {
        eprintln!("{text}");
    }

    /// Workflow commands for a CI runner (annotations): on stdout, where the runner reads
    /// them, unless stdout carries the JSON result (then on stderr).
    pub(crate) fn workflow_commands(self, text: impl Display) {
        if self.json {
            eprint!("{text}");
        } else {
            print!("{text}");
        }
    }

    /// Report a failed run: `error: ...` on stderr, and with `--json` also
    /// `{"error", "exit_code"}` on one line of stdout.
    pub(crate) fn error(self, e: &anyhow::Error, status: ExitStatus) {
        let msg = message(e);
        if self.json {
            println!("{}", json!({"error": msg, "exit_code": status.code()}));
        }
        eprintln!("error: {msg}");
    }
}

/// A value as a line of text (its `Display`, then a newline).
pub(crate) fn line(value: impl Display) -> impl Display {
    fmt::from_fn(move |f| writeln!(f, "{value}"))
}

/// An error with its cause chain, skipping causes already quoted by their wrapper.
fn message(e: &anyhow::Error) -> String {
    let mut msg = String::new();
    for cause in e.chain() {
        let c = cause.to_string();
        if !msg.contains(&c) {
            if !msg.is_empty() {
                msg.push_str(": ");
            }
            msg.push_str(&c);
        }
    }
    msg
}
