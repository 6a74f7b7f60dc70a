//! Lint findings: what is wrong with a pending step, where, and how to fix it.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Severity of a lint finding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    /// Blocks apply.
    Error,
    /// Reported only.
    Warning,
}

/// One lint finding, with where and how to fix it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Finding {
    /// Error or warning.
    pub level: Level,
    /// Stable code, e.g. `lossy-cast`.
    pub code: String,
    /// File name.
    pub file: String,
    /// 1-based line.
    pub line: usize,
    /// What is wrong.
    pub message: String,
    /// How to fix it.
    pub hint: String,
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let lvl = match self.level {
            Level::Error => "error",
            Level::Warning => "warning",
        };
        write!(
            f,
            "{}:{}: {lvl}[{}]: {}\n  hint: {}",
            self.file, self.line, self.code, self.message, self.hint
        )
    }
}
