//! `proc:COMMAND`: a long-lived model process. It is started once (on the first batch)
//! and speaks JSON lines for the whole run: memlane writes one JSON array of texts per
//! line to its stdin, and the process answers one line on stdout, a JSON array of
//! vectors (or `{"embeddings": [...]}`, or `{"error": "..."}` for a batch it refuses).
//! Lines that are not JSON (a library's banner printed to stdout) are skipped.
//!
//! A process that exits, or does not answer a batch within the timeout, is killed with
//! everything it started and started again; the batch is sent again to the new
//! process. After `max_restarts` restarts the embedder fails, naming the cause.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError, channel};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::command::{shell, stop};
use super::{Counters, EmbedError, Embedder};

/// A model process started once and fed JSON lines.
pub(crate) struct ProcessEmbedder {
    pub(crate) cmd: String,
    pub(crate) timeout: Duration,
    pub(crate) batch: usize,
    pub(crate) max_restarts: u64,
    pub(crate) counters: Arc<Counters>,
    pub(crate) running: Mutex<Option<Running>>,
}

/// The process and its output lines (read by a thread, so a wait can time out).
pub(crate) struct Running {
    child: Child,
    stdin: ChildStdin,
    lines: Receiver<std::io::Result<String>>,
}

/// Why a batch got no answer from the process.
enum Lost {
    /// It exited (or closed its pipes).
    Exited(String),
    /// It did not answer in time.
    Hung,
}

impl ProcessEmbedder {
    pub(crate) fn new(cmd: String, timeout: Duration, batch: usize, max_restarts: u64) -> Self {
        ProcessEmbedder {
            cmd,
            timeout,
            batch,
            max_restarts,
            counters: Arc::new(Counters::default()),
            running: Mutex::new(None),
        }
    }

    fn start(&self) -> Result<Running, EmbedError> {
        let mut child = shell(&self.cmd)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .map_err(|e| format!("model process `{}` could not be started: {e}", self.cmd))?;
        let stdin = child.stdin.take().ok_or("no stdin")?;
        let stdout = child.stdout.take().ok_or("no stdout")?;
        let (tx, lines) = channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Ok(Running {
            child,
            stdin,
            lines,
        })
    }

    /// Send one batch and wait for its answer line.
    fn exchange(&self, run: &mut Running, request: &[u8]) -> Result<serde_json::Value, Lost> {
        let exited = |run: &mut Running| {
            let status = run.child.wait_timeout_status().map_or_else(
                || "closed its output".to_owned(),
                |s| format!("exited with {s}"),
            );
            Lost::Exited(status)
        };
        if run
            .stdin
            .write_all(request)
            .and_then(|()| run.stdin.flush())
            .is_err()
        {
            return Err(exited(run));
        }
        let deadline = Instant::now() + self.timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match run.lines.recv_timeout(left) {
                Ok(Ok(line)) => {
                    let t = line.trim_start();
                    if !(t.starts_with('[') || t.starts_with('{')) {
                        // a banner or a log line on stdout: not an answer
                        if !t.is_empty() {
                            tracing::debug!(cmd = %self.cmd, line = %t, "model process printed a non-JSON line");
                        }
                        continue;
                    }
                    if let Ok(v) = serde_json::from_str(t) {
                        return Ok(v);
                    }
                    tracing::debug!(cmd = %self.cmd, "model process printed a line that is not JSON");
                }
                Ok(Err(_)) | Err(RecvTimeoutError::Disconnected) => return Err(exited(run)),
                Err(RecvTimeoutError::Timeout) => return Err(Lost::Hung),
            }
        }
    }
}

trait WaitStatus {
    fn wait_timeout_status(&mut self) -> Option<std::process::ExitStatus>;
}

impl WaitStatus for Child {
    /// The exit status if the process exits within a moment (its pipe closed first).
    fn wait_timeout_status(&mut self) -> Option<std::process::ExitStatus> {
        for _ in 0..50 {
            if let Ok(Some(s)) = self.try_wait() {
                return Some(s);
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        None
    }
}

impl Embedder for ProcessEmbedder {
    fn embed(&self, texts: &[&str]) -> Result<Vec<f32>, EmbedError> {
        let mut request = serde_json::to_vec(texts)?;
        request.push(b'\n');
        let mut guard = self
            .running
            .lock()
            .map_err(|_| "the model process handle was poisoned by a panic")?;
        loop {
            if guard.is_none() {
                *guard = Some(self.start()?);
            }
            let Some(run) = guard.as_mut() else {
                continue;
            };
            self.counters.request();
            let lost = match self.exchange(run, &request) {
                Ok(v) => {
                    let out = super::parse_vectors(v, texts.len())
                        .map_err(|e| format!("model process `{}` {e}", self.cmd))?;
                    self.counters.answered(texts.len(), None);
                    return Ok(out);
                }
                Err(lost) => lost,
            };
            if let Some(mut r) = guard.take() {
                stop(&mut r.child);
            }
            let why = match lost {
                Lost::Exited(s) => format!("model process `{}` {s}", self.cmd),
                Lost::Hung => format!(
                    "model process `{}` did not answer a batch of {} texts within {} s (killed)",
                    self.cmd,
                    texts.len(),
                    self.timeout.as_secs_f64()
                ),
            };
            if self.counters.snapshot().restarts >= self.max_restarts {
                return Err(format!(
                    "{why}; it was restarted {} time(s) already (max_restarts {}); look at its stderr, or raise `max_restarts` / `timeout_secs`",
                    self.counters.snapshot().restarts,
                    self.max_restarts
                )
                .into());
            }
            tracing::warn!("{why}; starting it again and resending the batch");
            self.counters.restart();
            self.counters.retry();
        }
    }

    fn batch_size(&self) -> usize {
        self.batch
    }

    fn calls(&self) -> Option<memlane_core::EmbedderCalls> {
        Some(self.counters.snapshot())
    }
}

impl Drop for ProcessEmbedder {
    /// Close the process's stdin (a well-behaved model exits on end of input), give it
    /// a moment, then kill what is left.
    fn drop(&mut self) {
        let run = self.running.get_mut().ok().and_then(Option::take);
        if let Some(Running {
            mut child, stdin, ..
        }) = run
        {
            drop(stdin);
            if child.wait_timeout_status().is_none() {
                stop(&mut child);
            }
        }
    }
}
