//! `apply --metrics-addr`: the library's apply metrics served in the Prometheus text
//! format at `http://ADDR/metrics` while the apply runs (a thread with a blocking
//! listener: one small response per scrape, no async runtime features needed).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use memlane_store::ApplyMetrics;

/// Listen on `addr` (port 0: any free port) and serve `metrics`; returns the address.
pub(crate) fn serve(addr: &str, metrics: Arc<ApplyMetrics>) -> Result<SocketAddr> {
    let listener = TcpListener::bind(addr).with_context(|| {
        format!("--metrics-addr {addr}: cannot listen there (give HOST:PORT, e.g. 127.0.0.1:9464, or port 0 for any free port)")
    })?;
    let local = listener.local_addr()?;
    std::thread::Builder::new()
        .name("memlane-metrics".into())
        .spawn(move || {
            for conn in listener.incoming().flatten() {
                let _ = answer(conn, &metrics);
            }
        })?;
    Ok(local)
}

fn answer(mut conn: TcpStream, metrics: &ApplyMetrics) -> std::io::Result<()> {
    conn.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut buf = [0u8; 4096];
    let mut n = 0;
    while n < buf.len() {
        let k = conn.read(&mut buf[n..])?;
        if k == 0 {
            break;
        }
        n += k;
        if buf[..n].windows(4).any(|w| w == b"\r\n\r\n") {
            break;
        }
    }
    let req = String::from_utf8_lossy(&buf[..n]);
    let path = req.split_whitespace().nth(1).unwrap_or("/");
    let (status, body) = if path == "/metrics" || path.starts_with("/metrics?") {
        ("200 OK", metrics.render())
    } else {
        ("404 Not Found", "memlane serves /metrics\n".to_owned())
    };
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    conn.write_all(head.as_bytes())?;
    conn.write_all(body.as_bytes())?;
    conn.flush()
}
