//! Embedders the CLI can supply: the built-in hashing embedder and external commands.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use memlane_store::{EmbedError, Embedder, HashEmbedder};

/// An embedder run as an external command: it reads a JSON array of texts on stdin
/// and writes a JSON array of vectors (arrays of numbers) on stdout. A call that takes
/// longer than `timeout` is killed (with every process the command started) and fails.
struct CommandEmbedder {
    cmd: String,
    timeout: Duration,
}

impl Embedder for CommandEmbedder {
    fn embed(&self, texts: &[&str]) -> Result<Vec<f32>, EmbedError> {
        let mut child = Command::new("sh")
            .arg("-c")
            .arg(&self.cmd)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            // its own process group, so a timeout kills the model the shell started too
            .process_group(0)
            .spawn()?;
        let input = serde_json::to_vec(texts)?;
        let mut stdin = child.stdin.take().ok_or("no stdin")?;
        let writer = std::thread::spawn(move || stdin.write_all(&input));
        let mut stdout = child.stdout.take().ok_or("no stdout")?;
        let (sent, output) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut out = Vec::new();
            let _ = sent.send(stdout.read_to_end(&mut out).map(|_| out));
        });
        let deadline = Instant::now() + self.timeout;
        let timed_out = |child: &mut std::process::Child| -> EmbedError {
            // the group (the model the shell started), then the shell itself; the pipe
            // threads end when the pipes close
            kill_group(child.id());
            let _ = child.kill();
            let _ = child.wait();
            format!(
                "`{}` did not answer within {} s (killed); raise --embedder-timeout or MEMLANE_EMBEDDER_TIMEOUT if the model is just slow",
                self.cmd,
                self.timeout.as_secs_f64()
            )
            .into()
        };
        // the output ends when the model closes it (it exits); the wait wakes as soon as
        // it does
        let out = loop {
            match output.recv_timeout(Duration::from_millis(20)) {
                Ok(r) => break r?,
                Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
                    return Err("reading the command's output failed".into());
                }
                Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                    if Instant::now() >= deadline {
                        return Err(timed_out(&mut child));
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
                return Err(timed_out(&mut child));
            }
            std::thread::sleep(Duration::from_millis(1));
        };
        let _ = writer.join();
        if !status.success() {
            return Err(format!("`{}` exited with {}", self.cmd, status).into());
        }
        let vecs: Vec<Vec<f32>> = serde_json::from_slice(&out)?;
        Ok(vecs.into_iter().flatten().collect())
    }
}

/// SIGKILL a process group (the command and everything it started), with the `kill`
/// program (util-linux or procps); where it is missing only the shell is killed.
fn kill_group(pgid: u32) {
    let _ = Command::new("kill")
        .args(["-KILL", "--", &format!("-{pgid}")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

/// The per-batch timeout of `cmd:` embedders, set once from `--embedder-timeout` (or
/// `MEMLANE_EMBEDDER_TIMEOUT`, which clap reads into the same flag).
static TIMEOUT: std::sync::OnceLock<Duration> = std::sync::OnceLock::new();

/// Default seconds a `cmd:` embedder may take per batch.
const DEFAULT_TIMEOUT_SECS: u64 = 300;

/// Set the per-batch timeout of `cmd:` embedders (seconds; non-positive: the default).
pub(crate) fn set_timeout(secs: Option<f64>) -> Result<()> {
    let d = match secs {
        None => Duration::from_secs(DEFAULT_TIMEOUT_SECS),
        Some(s) if s > 0.0 && s.is_finite() => Duration::from_secs_f64(s),
        Some(s) => bail!("--embedder-timeout {s} must be a positive number of seconds"),
    };
    let _ = TIMEOUT.set(d);
    Ok(())
}

fn timeout() -> Duration {
    *TIMEOUT.get_or_init(|| Duration::from_secs(DEFAULT_TIMEOUT_SECS))
}

/// Parse `hash:DIM[:SEED]` or `cmd:COMMAND`.
pub(crate) fn parse_spec(spec: &str) -> Result<Arc<dyn Embedder>> {
    if let Some(h) = HashEmbedder::parse(spec) {
        return Ok(h.arc());
    }
    if let Some(cmd) = spec.strip_prefix("cmd:") {
        return Ok(Arc::new(CommandEmbedder {
            cmd: cmd.to_owned(),
            timeout: timeout(),
        }));
    }
    bail!("embedder spec `{spec}` is not `hash:DIM[:SEED]` or `cmd:COMMAND`")
}

/// Parse repeated `NAME=SPEC` options.
pub(crate) fn parse_all(items: &[String]) -> Result<HashMap<String, Arc<dyn Embedder>>> {
    let mut out = HashMap::new();
    for it in items {
        let (name, spec) = it
            .split_once('=')
            .with_context(|| format!("`{it}` is not NAME=SPEC (e.g. minilm=hash:384)"))?;
        out.insert(name.to_owned(), parse_spec(spec)?);
    }
    Ok(out)
}
