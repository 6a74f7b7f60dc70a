//! `http:`: a server speaking the OpenAI embeddings API (`POST {base}/embeddings` with
//! `{"model", "input": [texts], "encoding_format": "float"}`; answers
//! `{"data": [{"index", "embedding"}], "usage": {"total_tokens"}}`). OpenAI, Azure
//! OpenAI, Ollama, Hugging Face TEI, vLLM, LiteLLM and infinity speak it.
//!
//! A call of the backfill (`batch_size × concurrency × 4` texts) is split into requests
//! of `batch_size` texts, `concurrency` in flight at a time on a runtime of the embedder's own
//! (so a call never blocks the store's async workers, whatever thread it comes from).
//! A request that gets 408, 409, 429 or 5xx, a dropped connection, a cut body or no
//! answer within the timeout is sent again after a jittered exponential backoff (the
//! server's `Retry-After` wins), up to `max_retries` times; anything else fails the
//! call at once, naming the HTTP status, the server's message and (through
//! [`EmbedFailure`]) the request's first record. Requests and estimated tokens go
//! through per-minute limits. The API key is read from an environment variable when
//! the embedder is made and is never printed or recorded.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::{StreamExt, TryStreamExt};
use serde::Deserialize;

use super::limit::{Bucket, backoff, retry_after};
use super::{Counters, EmbedError, EmbedFailure, Embedder};

/// Rounds of `concurrency` requests in one call of the backfill (see `batch_size`).
const ROUNDS: usize = 4;

/// The settings of an HTTP embedder.
#[derive(Clone, PartialEq)]
pub struct HttpSettings {
    /// Base URL (`https://api.openai.com/v1`, `http://127.0.0.1:11434/v1`); the
    /// `/embeddings` path is added unless the URL already ends with it.
    pub url: String,
    /// The model name the server knows.
    pub model: String,
    /// The environment variable holding the API key (sent as `Authorization: Bearer`).
    pub api_key_env: Option<String>,
    /// Sent as the request's `dimensions` (models that can shorten their output).
    pub dimensions: Option<usize>,
    /// Texts per request.
    pub batch_size: usize,
    /// Requests in flight at once.
    pub concurrency: usize,
    /// Seconds a request may take before it is abandoned (and retried).
    pub timeout: Duration,
    /// Retries of one request after retryable failures.
    pub max_retries: u32,
    /// The longest backoff between retries (a server's `Retry-After` may be longer).
    pub max_backoff: Duration,
    /// Requests per minute (none: no limit).
    pub requests_per_minute: Option<f64>,
    /// Estimated tokens per minute (4 characters a token; none: no limit).
    pub tokens_per_minute: Option<f64>,
}

impl std::fmt::Debug for HttpSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpSettings")
            .field("url", &self.url)
            .field("model", &self.model)
            .field("api_key_env", &self.api_key_env)
            .field("batch_size", &self.batch_size)
            .field("concurrency", &self.concurrency)
            .finish_non_exhaustive()
    }
}

impl HttpSettings {
    /// Defaults for a URL and model: 64 texts a request, 4 in flight, 60 s timeout,
    /// 6 retries with backoff up to 30 s, no rate limit.
    pub fn new(url: impl Into<String>, model: impl Into<String>) -> Self {
        HttpSettings {
            url: url.into(),
            model: model.into(),
            api_key_env: None,
            dimensions: None,
            batch_size: 64,
            concurrency: 4,
            timeout: Duration::from_secs(60),
            max_retries: 6,
            max_backoff: Duration::from_secs(30),
            requests_per_minute: None,
            tokens_per_minute: None,
        }
    }

    fn endpoint(&self) -> String {
        let base = self.url.trim_end_matches('/');
        if base.ends_with("/embeddings") {
            base.to_owned()
        } else {
            format!("{base}/embeddings")
        }
    }
}

/// What the request tasks share.
struct Shared {
    settings: HttpSettings,
    endpoint: String,
    client: reqwest::Client,
    key: Option<String>,
    requests: Option<Bucket>,
    tokens: Option<Bucket>,
    counters: Arc<Counters>,
}

/// An OpenAI-compatible embeddings client.
pub(crate) struct HttpEmbedder {
    shared: Arc<Shared>,
    runtime: Option<tokio::runtime::Runtime>,
}

impl HttpEmbedder {
    /// Make the client; fails when the API key's variable is unset or the URL is not
    /// http(s).
    pub(crate) fn new(settings: HttpSettings) -> Result<Self, String> {
        if !(settings.url.starts_with("http://") || settings.url.starts_with("https://")) {
            return Err(format!(
                "url `{}` is not an http:// or https:// URL (e.g. http://127.0.0.1:11434/v1)",
                settings.url
            ));
        }
        if settings.model.is_empty() {
            return Err("no model given; set `model` to the name the server serves".into());
        }
        let key = match &settings.api_key_env {
            None => None,
            Some(var) => Some(std::env::var(var).map_err(|_| {
                format!("the API key variable `{var}` is not set; export it, or remove `api_key_env` for a server without keys")
            })?),
        };
        let client = reqwest::Client::builder()
            .timeout(settings.timeout)
            .connect_timeout(settings.timeout.min(Duration::from_secs(10)))
            .build()
            .map_err(|e| format!("the HTTP client could not be made: {e}"))?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("memlane-http-embedder")
            .enable_all()
            .build()
            .map_err(|e| format!("the HTTP embedder's runtime could not start: {e}"))?;
        Ok(HttpEmbedder {
            shared: Arc::new(Shared {
                endpoint: settings.endpoint(),
                requests: settings.requests_per_minute.map(Bucket::per_minute),
                tokens: settings.tokens_per_minute.map(Bucket::per_minute),
                settings,
                client,
                key,
                counters: Arc::new(Counters::default()),
            }),
            runtime: Some(runtime),
        })
    }
}

impl Drop for HttpEmbedder {
    fn drop(&mut self) {
        // may be dropped inside another runtime: do not block on the workers
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

impl Embedder for HttpEmbedder {
    fn embed(&self, texts: &[&str]) -> Result<Vec<f32>, EmbedError> {
        let rt = self
            .runtime
            .as_ref()
            .ok_or("the HTTP embedder was shut down")?;
        let batch = self.shared.settings.batch_size.max(1);
        let requests: Vec<(usize, Vec<String>)> = texts
            .chunks(batch)
            .enumerate()
            .map(|(i, c)| (i * batch, c.iter().map(|s| (*s).to_owned()).collect()))
            .collect();
        let shared = self.shared.clone();
        let (tx, rx) = std::sync::mpsc::channel();
        rt.spawn(async move {
            let concurrency = shared.settings.concurrency.max(1);
            let r: Result<Vec<Vec<f32>>, EmbedError> = futures::stream::iter(requests)
                .map(|(offset, texts)| {
                    let s = shared.clone();
                    async move { s.request(offset, &texts).await }
                })
                .buffered(concurrency)
                .try_collect()
                .await;
            let _ = tx.send(r);
        });
        let parts = rx
            .recv()
            .map_err(|_| "the HTTP embedder's task ended without an answer")??;
        Ok(parts.concat())
    }

    /// `ROUNDS` rounds of `concurrency` requests: within a call the requests run as a
    /// sliding window (a slow answer does not hold the others back), and only the call's
    /// end waits for the last ones.
    fn batch_size(&self) -> usize {
        self.shared.settings.batch_size.max(1) * self.shared.settings.concurrency.max(1) * ROUNDS
    }

    fn calls(&self) -> Option<memlane_core::EmbedderCalls> {
        Some(self.shared.counters.snapshot())
    }
}

/// One failed try of a request.
struct Failure {
    retryable: bool,
    message: String,
    retry_after: Option<Duration>,
}

#[derive(Deserialize)]
struct Answer {
    data: Vec<Item>,
    #[serde(default)]
    usage: Option<Usage>,
}

#[derive(Deserialize)]
struct Item {
    #[serde(default)]
    index: Option<usize>,
    embedding: Vec<f32>,
}

#[derive(Deserialize)]
struct Usage {
    #[serde(default)]
    total_tokens: Option<u64>,
    #[serde(default)]
    prompt_tokens: Option<u64>,
}

impl Shared {
    /// One request of texts (the call's texts from `offset`), with its retries.
    async fn request(&self, offset: usize, texts: &[String]) -> Result<Vec<f32>, EmbedError> {
        let started = Instant::now();
        let est_tokens: f64 = texts
            .iter()
            .map(|t| (t.len() as f64 / 4.0).ceil().max(1.0))
            .sum();
        let mut attempt = 0u32;
        loop {
            self.wait_for_limits(est_tokens).await;
            self.counters.request();
            let f = match self.try_once(texts).await {
                Ok(v) => return Ok(v),
                Err(f) => f,
            };
            if !f.retryable {
                return Err(EmbedFailure::at(offset, f.message));
            }
            if attempt >= self.settings.max_retries {
                return Err(EmbedFailure::at(
                    offset,
                    format!(
                        "{} (after {} tries over {:.1} s); the server is overloaded or down: lower `concurrency` or set `requests_per_minute`, or raise `max_retries`/`timeout_secs`",
                        f.message,
                        attempt + 1,
                        started.elapsed().as_secs_f64()
                    ),
                ));
            }
            let wait = backoff(attempt, self.settings.max_backoff, f.retry_after);
            tracing::debug!(
                endpoint = %self.endpoint,
                attempt,
                wait_ms = wait.as_millis() as u64,
                "{}; retrying",
                f.message
            );
            self.counters.retry();
            attempt += 1;
            tokio::time::sleep(wait).await;
        }
    }

    async fn wait_for_limits(&self, est_tokens: f64) {
        for (bucket, n) in [(&self.requests, 1.0), (&self.tokens, est_tokens)] {
            if let Some(b) = bucket {
                while let Some(w) = b.take(n) {
                    tokio::time::sleep(w).await;
                }
            }
        }
    }

    async fn try_once(&self, texts: &[String]) -> Result<Vec<f32>, Failure> {
        let mut body = serde_json::json!({
            "model": self.settings.model,
            "input": texts,
            "encoding_format": "float",
        });
        if let Some(d) = self.settings.dimensions {
            body["dimensions"] = d.into();
        }
        let mut req = self.client.post(&self.endpoint).json(&body);
        if let Some(k) = &self.key {
            req = req.bearer_auth(k);
        }
        let resp = req.send().await.map_err(|e| self.transport(&e))?;
        let status = resp.status();
        let ra = retry_after(resp.headers());
        let bytes = resp.bytes().await.map_err(|e| self.transport(&e))?;
        if !status.is_success() {
            return Err(self.refused(status, ra, &bytes));
        }
        let answer: Answer = serde_json::from_slice(&bytes).map_err(|e| Failure {
            // a cut body is a transport problem; a well-formed other shape is not
            retryable: e.is_eof(),
            message: format!(
                "{} answered HTTP {status} with a body that is not an embeddings list ({e}): {}",
                self.endpoint,
                excerpt(&bytes)
            ),
            retry_after: None,
        })?;
        self.vectors(answer, texts.len())
    }

    /// Put the answer's vectors in input order and check their count and dimension.
    fn vectors(&self, answer: Answer, n: usize) -> Result<Vec<f32>, Failure> {
        let fail = |message: String| Failure {
            retryable: false,
            message,
            retry_after: None,
        };
        if answer.data.len() != n {
            return Err(fail(format!(
                "{} answered {} embeddings for {n} inputs",
                self.endpoint,
                answer.data.len()
            )));
        }
        let mut items: Vec<(usize, Vec<f32>)> = answer
            .data
            .into_iter()
            .enumerate()
            .map(|(i, it)| (it.index.unwrap_or(i), it.embedding))
            .collect();
        items.sort_by_key(|(i, _)| *i);
        if items.iter().enumerate().any(|(k, (i, _))| k != *i) {
            return Err(fail(format!(
                "{} answered embeddings whose `index` values are not 0..{n}",
                self.endpoint
            )));
        }
        let d = items.first().map_or(0, |(_, v)| v.len());
        if let Some(want) = self.settings.dimensions.filter(|w| *w != d) {
            return Err(fail(format!(
                "{} answered vectors of dimension {d}, but `dimensions = {want}` was asked; the model `{}` may not support shortening",
                self.endpoint, self.settings.model
            )));
        }
        if let Some((i, v)) = items.iter().find(|(_, v)| v.len() != d) {
            return Err(fail(format!(
                "{} answered vector {i} of dimension {} where vector 0 has {d}",
                self.endpoint,
                v.len()
            )));
        }
        let tokens = answer
            .usage
            .and_then(|u| u.total_tokens.or(u.prompt_tokens));
        self.counters.answered(n, tokens);
        Ok(items.into_iter().flat_map(|(_, v)| v).collect())
    }

    fn transport(&self, e: &reqwest::Error) -> Failure {
        let what = if e.is_timeout() {
            format!(
                "no answer from {} within {} s",
                self.endpoint,
                self.settings.timeout.as_secs_f64()
            )
        } else if e.is_connect() {
            format!("could not connect to {}", self.endpoint)
        } else {
            format!(
                "the connection to {} failed ({})",
                self.endpoint,
                root_cause(e)
            )
        };
        Failure {
            retryable: true,
            message: what,
            retry_after: None,
        }
    }

    fn refused(
        &self,
        status: reqwest::StatusCode,
        retry_after: Option<Duration>,
        body: &[u8],
    ) -> Failure {
        let code = status.as_u16();
        let retryable = matches!(code, 408 | 409 | 425 | 429) || status.is_server_error();
        let hint = match code {
            401 | 403 => match &self.settings.api_key_env {
                Some(v) => format!("; check the key in `{v}` and its access to model `{}`", self.settings.model),
                None => "; the server wants an API key: set `api_key_env` to the variable that holds it".to_owned(),
            },
            404 => format!(
                "; check the URL (the embeddings endpoint is {}) and the model name `{}`",
                self.endpoint, self.settings.model
            ),
            400 | 422 => "; the server refused the request: check `model`, `dimensions` and that no text is empty or too long".to_owned(),
            _ => String::new(),
        };
        Failure {
            retryable,
            message: format!(
                "{} answered HTTP {status}: {}{hint}",
                self.endpoint,
                excerpt(body)
            ),
            retry_after,
        }
    }
}

/// The innermost cause of an error, as text (no dependency's source paths).
fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cur: &(dyn std::error::Error + 'static) = e;
    while let Some(next) = cur.source() {
        cur = next;
    }
    cur.to_string()
}

/// At most 300 characters of a body, on one line.
fn excerpt(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let one: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if one.is_empty() {
        return "(empty body)".into();
    }
    let mut s: String = one.chars().take(300).collect();
    if one.chars().count() > 300 {
        s.push('…');
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoint_and_secrets() {
        let mut s = HttpSettings::new("http://127.0.0.1:8080/v1/", "m");
        assert_eq!(s.endpoint(), "http://127.0.0.1:8080/v1/embeddings");
        s.url = "https://x/openai/deployments/d/embeddings".into();
        assert_eq!(s.endpoint(), "https://x/openai/deployments/d/embeddings");
        s.api_key_env = Some("MEMLANE_TEST_SURELY_UNSET_KEY".into());
        let e = HttpEmbedder::new(s).err().unwrap();
        assert!(e.contains("MEMLANE_TEST_SURELY_UNSET_KEY"), "{e}");
        let e = HttpEmbedder::new(HttpSettings::new("ftp://x", "m"))
            .err()
            .unwrap();
        assert!(e.contains("not an http"), "{e}");
        assert_eq!(excerpt(b"  a\n b "), "a b");
        assert_eq!(excerpt(b""), "(empty body)");
    }
}
