//! `cmd:COMMAND`: an embedder run as a command started for every batch. It reads a
//! JSON array of texts on stdin and writes a JSON array of vectors on stdout. A call
//! that takes longer than the timeout is killed (with every process the command
//! started) and fails.

use std::io::{Read, Write};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::mpsc::{RecvTimeoutError, channel};
use std::time::{Duration, Instant};

use super::{Counters, EmbedError, Embedder};

/// A one-shot command embedder.
pub(crate) struct CommandEmbedder {
    pub(crate) cmd: String,
    pub(crate) timeout: Duration,
    pub(crate) batch: usize,
    pub(crate) counters: Arc<Counters>,
}

impl Embedder for CommandEmbedder {
    fn embed(&self, texts: &[&str]) -> Result<Vec<f32>, EmbedError> {
        self.counters.request();
        let mut child = shell(&self.cmd)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .map_err(|e| format!("`{}` could not be started: {e}", self.cmd))?;
        let input = serde_json::to_vec(texts)?;
        let mut stdin = child.stdin.take().ok_or("no stdin")?;
        let writer = std::thread::spawn(move || stdin.write_all(&input));
        let mut stdout = child.stdout.take().ok_or("no stdout")?;
        let (sent, output) = channel();
        std::thread::spawn(move || {
            let mut out = Vec::new();
            let _ = sent.send(stdout.read_to_end(&mut out).map(|_| out));
        });
        let deadline = Instant::now() + self.timeout;
        // the output ends when the model closes it (it exits); the wait wakes as soon as
        // it does
        let out = loop {
            match output.recv_timeout(Duration::from_millis(20)) {
                Ok(r) => break r?,
                Err(RecvTimeoutError::Disconnected) => {
                    return Err("reading the command's output failed".into());
                }
                Err(RecvTimeoutError::Timeout) => {
                    if Instant::now() >= deadline {
                        return Err(self.timed_out(&mut child));
                    }
                    // the shell exited but something it started still holds the output
                    if child.try_wait()?.is_some() {
                        kill_group(child.id());
                    }
                }
            }
        };
        let status = loop {
            if let Some(st) = child.try_wait()? {
                break st;
            }
            if Instant::now() >= deadline {
                return Err(self.timed_out(&mut child));
            }
            std::thread::sleep(Duration::from_millis(1));
        };
        let _ = writer.join();
        if !status.success() {
            return Err(format!("`{}` exited with {}", self.cmd, status).into());
        }
        let value = answer(&out).map_err(|e| {
            format!(
                "`{}` wrote something that is not JSON ({e}); write one JSON array of vectors to stdout, and logs to stderr",
                self.cmd
            )
        })?;
        let v =
            super::parse_vectors(value, texts.len()).map_err(|e| format!("`{}` {e}", self.cmd))?;
        self.counters.answered(texts.len(), None);
        Ok(v)
    }

    fn batch_size(&self) -> usize {
        self.batch
    }

    fn calls(&self) -> Option<memlane_core::EmbedderCalls> {
        Some(self.counters.snapshot())
    }
}

impl CommandEmbedder {
    fn timed_out(&self, child: &mut Child) -> EmbedError {
        // the group (the model the shell started), then the shell itself; the pipe
        // threads end when the pipes close
        stop(child);
        format!(
            "`{}` did not answer within {} s (killed); raise the embedder's timeout (--embedder-timeout, MEMLANE_EMBEDDER_TIMEOUT or `timeout_secs` in memlane.toml) if the model is just slow",
            self.cmd,
            self.timeout.as_secs_f64()
        )
        .into()
    }
}

/// The command's answer: its whole output as JSON, or else its last line that is JSON
/// (a library's banner printed to stdout before the answer is skipped).
fn answer(out: &[u8]) -> Result<serde_json::Value, serde_json::Error> {
    serde_json::from_slice(out).or_else(|e| {
        String::from_utf8_lossy(out)
            .lines()
            .rev()
            .map(str::trim)
            .find(|l| l.starts_with('[') || l.starts_with('{'))
            .and_then(|l| serde_json::from_str(l).ok())
            .ok_or(e)
    })
}

/// `sh -c CMD` in a process group of its own, so a timeout kills what the shell started.
pub(crate) fn shell(cmd: &str) -> Command {
    let mut c = Command::new("sh");
    c.arg("-c").arg(cmd).process_group(0);
    c
}

/// Kill a child's process group and the child, and reap it.
pub(crate) fn stop(child: &mut Child) {
    kill_group(child.id());
    let _ = child.kill();
    let _ = child.wait();
}

/// SIGKILL a process group (the command and everything it started), with the `kill`
/// program (util-linux or procps); where it is missing only the shell is killed.
pub(crate) fn kill_group(pgid: u32) {
    let _ = Command::new("kill")
        .args(["-KILL", "--", &format!("-{pgid}")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}
