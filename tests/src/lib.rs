//! Test support shared by the integration tests (`it/`) and the CLI's tests: a real
//! S3-compatible server on 127.0.0.1.
//!
//! The server is moto's server mode (`python -m moto.server`), installed by `make test`
//! into the test venv (`bindings/python/requirements-test.txt`); the Makefile names that
//! venv's Python in `MEMLANE_S3_PYTHON`. It honours `If-None-Match: *` and `If-Match`
//! (conditional puts), multipart uploads, ranged reads and listing: everything Lance
//! and memlane's lock use. See docs/architecture.md for why this server.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// moto does not check signatures, but a request without credentials is anonymous and
/// refused on a private bucket: a well-formed (unchecked) header names the test's key.
const AUTH: &str = "Authorization: AWS4-HMAC-SHA256 Credential=memlane/20260101/us-east-1/s3/aws4_request, SignedHeaders=host, Signature=00\r\n";

/// A running S3 server with one bucket; stopped when dropped.
pub struct S3Server {
    child: Child,
    /// `http://127.0.0.1:<port>`.
    pub endpoint: String,
    /// The bucket created for the test.
    pub bucket: String,
}

/// The Python that has moto: `MEMLANE_S3_PYTHON`, else the project venv's, else `python3`.
fn python() -> String {
    if let Ok(p) = std::env::var("MEMLANE_S3_PYTHON") {
        return p;
    }
    let venv = std::env::var("HOME")
        .map(|h| format!("{h}/.cache/memlane/venv/bin/python"))
        .unwrap_or_default();
    if std::path::Path::new(&venv).exists() {
        venv
    } else {
        "python3".into()
    }
}

impl S3Server {
    /// Start a server on a free port and create `bucket`. Panics with the fix when moto
    /// is not installed (`make test` installs it).
    pub fn start(bucket: &str) -> S3Server {
        let py = python();
        let mut child = Command::new(&py)
            .args(["-m", "moto.server", "-H", "127.0.0.1", "-p", "0"])
            .env("MOTO_ALLOW_NONEXISTENT_REGION", "true")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start `{py} -m moto.server`: {e}; run `make deps-python` (installs moto[server]) or set MEMLANE_S3_PYTHON"));
        let stderr = child.stderr.take().expect("piped stderr");
        let (tx, rx) = std::sync::mpsc::channel();
        // werkzeug prints " * Running on http://127.0.0.1:PORT"; keep draining after
        std::thread::spawn(move || {
            let mut sent = false;
            let mut seen = String::new();
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if !sent {
                    if let Some(i) = line.find("http://127.0.0.1:") {
                        let port: String = line[i + 17..]
                            .chars()
                            .take_while(char::is_ascii_digit)
                            .collect();
                        let _ = tx.send(Ok(port));
                        sent = true;
                    } else {
                        seen.push_str(&line);
                        seen.push('\n');
                    }
                }
            }
            if !sent {
                let _ = tx.send(Err(seen));
            }
        });
        let port = match rx.recv_timeout(Duration::from_secs(120)) {
            Ok(Ok(p)) => p,
            Ok(Err(out)) => panic!(
                "`{py} -m moto.server` exited without serving; run `make deps-python` (installs moto[server]):\n{out}"
            ),
            Err(_) => panic!("`{py} -m moto.server` did not report its port"),
        };
        let server = S3Server {
            child,
            endpoint: format!("http://127.0.0.1:{port}"),
            bucket: bucket.to_owned(),
        };
        server.request("PUT", &format!("/{bucket}"), b"");
        server
    }

    /// A store URI inside the bucket.
    pub fn uri(&self, name: &str) -> String {
        format!("s3://{}/{name}", self.bucket)
    }

    /// The storage options that reach this server, as `(key, value)` pairs.
    pub fn options(&self) -> Vec<(String, String)> {
        [
            ("aws_endpoint", self.endpoint.as_str()),
            ("aws_access_key_id", "memlane"),
            ("aws_secret_access_key", "memlane"),
            ("aws_region", "us-east-1"),
            ("allow_http", "true"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
    }

    /// The options as `--storage-option` arguments of the CLI.
    pub fn cli_args(&self) -> Vec<String> {
        self.options()
            .into_iter()
            .flat_map(|(k, v)| ["--storage-option".to_owned(), format!("{k}={v}")])
            .collect()
    }

    /// One plain HTTP request (moto does not check signatures); returns (status, body).
    pub fn request(&self, method: &str, path: &str, body: &[u8]) -> (u16, Vec<u8>) {
        let host = self.endpoint.trim_start_matches("http://");
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut s = loop {
            match TcpStream::connect(host) {
                Ok(s) => break s,
                Err(e) if Instant::now() < deadline => {
                    let _ = e;
                    std::thread::sleep(Duration::from_millis(50));
                }
                Err(e) => panic!("S3 server at {host} is not reachable: {e}"),
            }
        };
        write!(
            s,
            "{method} {path} HTTP/1.1\r\nHost: {host}\r\nContent-Length: {}\r\n{AUTH}Connection: close\r\n\r\n",
            body.len()
        )
        .unwrap();
        s.write_all(body).unwrap();
        let mut resp = Vec::new();
        s.read_to_end(&mut resp).unwrap();
        let text = String::from_utf8_lossy(&resp);
        let status = text
            .split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or(0);
        let start = resp
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .map_or(resp.len(), |i| i + 4);
        (status, resp[start..].to_vec())
    }

    /// The keys under `prefix` in the bucket.
    pub fn list(&self, prefix: &str) -> Vec<String> {
        let (status, body) = self.request(
            "GET",
            &format!("/{}?list-type=2&prefix={prefix}", self.bucket),
            b"",
        );
        assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
        let text = String::from_utf8_lossy(&body);
        text.split("<Key>")
            .skip(1)
            .filter_map(|p| p.split("</Key>").next())
            .map(str::to_owned)
            .collect()
    }

    /// An object's bytes.
    pub fn get(&self, key: &str) -> Vec<u8> {
        let (status, body) = self.request("GET", &format!("/{}/{key}", self.bucket), b"");
        assert_eq!(status, 200, "GET {key}");
        body
    }

    /// Replace an object's bytes (as a hand edit would).
    pub fn put(&self, key: &str, bytes: &[u8]) {
        let (status, body) = self.request("PUT", &format!("/{}/{key}", self.bucket), bytes);
        assert_eq!(status, 200, "PUT {key}: {}", String::from_utf8_lossy(&body));
    }
}

/// A proxy in front of an S3 server that drops `If-None-Match` and `If-Match` from every
/// request: an S3-compatible server that ignores conditional writes.
pub struct IgnoresConditions {
    /// `http://127.0.0.1:<port>` of the proxy.
    pub endpoint: String,
}

impl S3Server {
    /// Start a proxy to this server that strips conditional-write headers.
    pub fn ignoring_conditions(&self) -> IgnoresConditions {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        let upstream = self.endpoint.trim_start_matches("http://").to_owned();
        std::thread::spawn(move || {
            for client in listener.incoming().map_while(Result::ok) {
                let upstream = upstream.clone();
                std::thread::spawn(move || proxy(client, &upstream));
            }
        });
        IgnoresConditions { endpoint }
    }
}

/// Forward one client connection, request by request, without conditional headers.
fn proxy(client: TcpStream, upstream: &str) {
    let Ok(server) = TcpStream::connect(upstream) else {
        return;
    };
    let (Ok(mut back), Ok(mut to_client)) = (server.try_clone(), client.try_clone()) else {
        return;
    };
    std::thread::spawn(move || {
        let _ = std::io::copy(&mut back, &mut to_client);
        let _ = to_client.shutdown(std::net::Shutdown::Both);
    });
    let mut reader = BufReader::new(client);
    let mut server = server;
    loop {
        let mut head = Vec::new();
        let mut length = 0usize;
        loop {
            let mut line = String::new();
            match reader.read_line(&mut line) {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
            let lower = line.to_ascii_lowercase();
            if let Some(v) = lower.strip_prefix("content-length:") {
                length = v.trim().parse().unwrap_or(0);
            }
            if lower.starts_with("if-none-match:") || lower.starts_with("if-match:") {
                continue;
            }
            let end = line == "\r\n";
            head.extend_from_slice(line.as_bytes());
            if end {
                break;
            }
        }
        let mut body = vec![0u8; length];
        if reader.read_exact(&mut body).is_err() || server.write_all(&head).is_err() {
            return;
        }
        if server.write_all(&body).is_err() {
            return;
        }
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
