"""A real embedding model behind the OpenAI embeddings API, on 127.0.0.1, for the tests
and the benchmark of memlane's `http:` embedder.

`POST /v1/embeddings` with `{"model", "input": [texts] | text, "encoding_format",
"dimensions"?}` answers `{"object": "list", "data": [{"object": "embedding", "index",
"embedding"}], "model", "usage": {"prompt_tokens", "total_tokens"}}`, as OpenAI does.
The model is wordllama (256-d, unit length; offline, from its PyPI wheel), or `hash` for
a model-free 64-d embedding (the benchmark, where the server's cost is its latency).

Faults, to test the client the way real servers fail (each for the first N requests,
or every request when N is omitted):

    --fault 429:N     answer 429 with `Retry-After: 1` (a rate limit)
    --fault 503:N     answer 503 (an overloaded server)
    --fault drop:N    close the connection without answering
    --fault hang:N    hold the request for an hour
    --fault dim       answer vectors one component short (the wrong dimension)
    --skip N          answer the first N requests normally before the faults begin

Every request is logged as a JSON line to --log: time, status, the texts' count and
the texts themselves, so a test can count what was requested. The port it listens on
is printed as `PORT <n>` on stdout.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import socket
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Callable, List, Optional

import numpy as np


def wordllama_model() -> Callable[[List[str]], np.ndarray]:
    import wordllama

    wl = wordllama.WordLlama.load(cache_dir=Path(wordllama.__file__).parent, disable_download=True)
    lock = threading.Lock()

    def embed(texts: List[str]) -> np.ndarray:
        with lock:
            v = np.asarray(wl.embed(texts), dtype=np.float64)
        return (v / np.linalg.norm(v, axis=1, keepdims=True)).astype(np.float32)

    return embed


def hash_model(texts: List[str]) -> np.ndarray:
    out = np.empty((len(texts), 64), dtype=np.float32)
    for i, t in enumerate(texts):
        seed = int.from_bytes(hashlib.blake2b(t.encode(), digest_size=8).digest(), "little")
        v = np.random.default_rng(seed).standard_normal(64)
        out[i] = v / np.linalg.norm(v)
    return out


class Faults:
    def __init__(self, spec: Optional[str], skip: int = 0) -> None:
        self.skip = skip
        self.kind: Optional[str] = None
        self.left: Optional[int] = None
        if spec:
            kind, _, n = spec.partition(":")
            self.kind = kind
            self.left = int(n) if n else None
        self.lock = threading.Lock()

    def take(self) -> Optional[str]:
        """The fault for this request, if any."""
        with self.lock:
            if self.skip > 0:
                self.skip -= 1
                return None
            if self.kind is None or self.kind == "dim":
                return self.kind
            if self.left is None:
                return self.kind
            if self.left > 0:
                self.left -= 1
                return self.kind
            return None


def serve(model: Callable[[List[str]], np.ndarray], model_name: str, faults: Faults, log: Optional[Path],
          latency: float, port: int) -> ThreadingHTTPServer:
    log_lock = threading.Lock()

    def record(status: int, texts: List[str]) -> None:
        if log is None:
            return
        line = json.dumps({"t": time.time(), "status": status, "n": len(texts), "texts": texts})
        with log_lock, log.open("a") as f:
            f.write(line + "\n")

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: object) -> None:  # quiet
            pass

        def answer(self, status: int, body: dict, headers: Optional[dict] = None) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(data)

        def do_POST(self) -> None:  # noqa: N802 (http.server's name)
            if not self.path.rstrip("/").endswith("/embeddings"):
                self.answer(404, {"error": {"message": f"no route {self.path}", "type": "invalid_request_error"}})
                return
            req = json.loads(self.rfile.read(int(self.headers.get("Content-Length", "0"))) or b"{}")
            inp = req.get("input")
            texts = [inp] if isinstance(inp, str) else list(inp or [])
            if req.get("model") != model_name:
                record(404, texts)
                self.answer(404, {"error": {"message": f"model `{req.get('model')}` not found",
                                            "type": "invalid_request_error"}})
                return
            fault = faults.take()
            if fault == "429":
                record(429, texts)
                self.answer(429, {"error": {"message": "Rate limit reached", "type": "rate_limit_error"}},
                            {"Retry-After": "1"})
                return
            if fault == "503":
                record(503, texts)
                self.answer(503, {"error": {"message": "overloaded", "type": "server_error"}})
                return
            if fault == "drop":
                record(0, texts)
                self.connection.shutdown(socket.SHUT_RDWR)
                self.connection.close()
                self.close_connection = True
                return
            if fault == "hang":
                record(-1, texts)
                time.sleep(3600)
                return
            if latency > 0:
                time.sleep(latency)
            vecs = model(texts)
            if fault == "dim":
                vecs = vecs[:, :-1]
            record(200, texts)
            tokens = sum(len(t.split()) for t in texts)
            self.answer(200, {
                "object": "list",
                "data": [{"object": "embedding", "index": i, "embedding": v.tolist()} for i, v in enumerate(vecs)],
                "model": model_name,
                "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
            })

    ThreadingHTTPServer.daemon_threads = True
    ThreadingHTTPServer.request_queue_size = 128
    return ThreadingHTTPServer(("127.0.0.1", port), Handler)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="wordllama", choices=["wordllama", "hash"])
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--fault")
    ap.add_argument("--skip", type=int, default=0)
    ap.add_argument("--log", type=Path)
    ap.add_argument("--latency", type=float, default=0.0, help="seconds added to every answered request")
    a = ap.parse_args()
    model = wordllama_model() if a.model == "wordllama" else hash_model
    srv = serve(model, a.model, Faults(a.fault, a.skip), a.log, a.latency, a.port)
    print(f"PORT {srv.server_address[1]}", flush=True)
    try:
        srv.serve_forever()
    except KeyboardInterrupt:
        pass
    sys.exit(0)


if __name__ == "__main__":
    main()
