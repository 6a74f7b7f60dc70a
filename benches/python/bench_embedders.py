"""Embedders as users run them (issue 18).

1. HTTP: ROWS texts through an OpenAI-compatible server on 127.0.0.1
   (``tests/python/openai_server.py --model hash --latency L``: a fixed server-side
   latency per request, a cheap 64-d embedding, so the server's cost is its latency).
   - memlane: a real migration (``add_space`` + ``reembed``) applied with
     ``memlane.Embedder("http:URL,model=hash,batch=B,concurrency=C")``; the wall time
     of ``store.apply`` (plan, fingerprint, backfill commits, checks) counts.
   - peer: a plain asyncio + ``httpx.AsyncClient`` script posting the same texts in
     batches of B with C requests in flight (no store, no checks), same server, same run.
   Throughput = texts / second; the ratio is memlane's over the peer's (goal >= 0.9).
2. A long-lived model process vs a process per batch: the same migration on ROWS_PROC
   rows with wordllama (``tests/python/wordllama_proc.py``) as ``proc:`` and as ``cmd:``
   (which loads the model for every batch); the speedup is reported.

Medians of REPEAT runs. Prints a table and writes ``benches/results/embedders.json``.

usage: python benches/python/bench_embedders.py [ROWS]   (default 20000)
"""

from __future__ import annotations

import asyncio
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Dict, List

import httpx

import memlane

ROOT = Path(__file__).resolve().parents[2]
SERVER = ROOT / "tests" / "python" / "openai_server.py"
PROC = ROOT / "tests" / "python" / "wordllama_proc.py"
OUT = ROOT / "benches" / "results" / "embedders.json"
LATENCY = 0.1
BATCH = 64
CONCURRENCY = 4
REPEAT = 3
ROWS_PROC = 2000

MIGRATION = """
description = "Embed every memory with the served model"

[[steps]]
op = "add_space"
space = "m"
dimension = {dim}
metric = "cosine"
normalized = true

[[steps]]
op = "reembed"
space = "m"
embedder = "m"
"""


def texts(n: int) -> List[str]:
    corpus = [json.loads(x)["content"] for x in (ROOT / "migrations-examples/data/corpus.jsonl").read_text().splitlines()]
    return [f"{corpus[i % len(corpus)]} (memory {i})" for i in range(n)]


def start_server() -> tuple[subprocess.Popen, str]:
    p = subprocess.Popen(
        [sys.executable, str(SERVER), "--model", "hash", "--latency", str(LATENCY)], stdout=subprocess.PIPE, text=True
    )
    line = p.stdout.readline() if p.stdout else ""
    return p, f"http://127.0.0.1:{int(line.split()[1])}/v1"


def memlane_run(tmp: Path, data: List[str], embedder: Any, dim: int) -> float:
    store = memlane.create(tmp / "mem", data=[{"id": f"m{i}", "content": t} for i, t in enumerate(data)])
    folder = tmp / "migrations"
    folder.mkdir()
    (folder / "0001_embed.toml").write_text(MIGRATION.format(dim=dim))
    t0 = time.perf_counter()
    report = store.apply(folder, embedders={"m": embedder}, progress=False)
    secs = time.perf_counter() - t0
    assert report.ok
    return secs


async def peer_run(url: str, data: List[str]) -> float:
    sem = asyncio.Semaphore(CONCURRENCY)
    limits = httpx.Limits(max_connections=CONCURRENCY, max_keepalive_connections=CONCURRENCY)
    async with httpx.AsyncClient(timeout=60, limits=limits) as client:

        async def one(batch: List[str]) -> int:
            async with sem:
                r = await client.post(f"{url}/embeddings", json={"model": "hash", "input": batch, "encoding_format": "float"})
                r.raise_for_status()
                return len(r.json()["data"])

        t0 = time.perf_counter()
        got = await asyncio.gather(*(one(data[i : i + BATCH]) for i in range(0, len(data), BATCH)))
        secs = time.perf_counter() - t0
    assert sum(got) == len(data)
    return secs


def bench_http(rows: int) -> Dict[str, Any]:
    data = texts(rows)
    server, url = start_server()
    try:
        ours, peer = [], []
        for r in range(REPEAT):
            # interleaved, so drift on the machine hits both sides alike
            with tempfile.TemporaryDirectory() as d:
                e = memlane.Embedder(f"http:{url},model=hash,batch={BATCH},concurrency={CONCURRENCY}")
                ours.append(memlane_run(Path(d), data, e, 64))
                calls = e.calls
            peer.append(asyncio.run(peer_run(url, data)))
            print(f"  http run {r + 1}: memlane {ours[-1]:.2f} s ({calls}), httpx {peer[-1]:.2f} s", flush=True)
    finally:
        server.kill()
        server.wait()
    m, p = statistics.median(ours), statistics.median(peer)
    ideal = rows / (BATCH * CONCURRENCY) * LATENCY
    return {
        "rows": rows,
        "batch": BATCH,
        "concurrency": CONCURRENCY,
        "latency_s": LATENCY,
        "memlane_s": ours,
        "httpx_s": peer,
        "memlane_texts_per_s": rows / m,
        "httpx_texts_per_s": rows / p,
        "throughput_ratio": p / m,
        "ideal_s": ideal,
    }


def bench_proc() -> Dict[str, Any]:
    data = texts(ROWS_PROC)
    out: Dict[str, List[float]] = {"proc": [], "cmd": []}
    for r in range(REPEAT):
        for kind in ("proc", "cmd"):
            with tempfile.TemporaryDirectory() as d:
                e = memlane.Embedder(f"{kind}:{sys.executable} {PROC}")
                out[kind].append(memlane_run(Path(d), data, memlane.embedder(e), 256))
        print(f"  wordllama run {r + 1}: proc {out['proc'][-1]:.2f} s, cmd {out['cmd'][-1]:.2f} s", flush=True)
    p, c = statistics.median(out["proc"]), statistics.median(out["cmd"])
    return {"rows": ROWS_PROC, "batch": 256, "proc_s": out["proc"], "cmd_s": out["cmd"], "speedup": c / p}


def main() -> None:
    rows = int(sys.argv[1]) if len(sys.argv) > 1 else 20_000
    http = bench_http(rows)
    proc = bench_proc()
    print(f"\nHTTP embedder, {rows} texts, batch {BATCH}, {CONCURRENCY} in flight, {LATENCY * 1000:.0f} ms a request "
          f"(ideal {http['ideal_s']:.1f} s)")
    print(f"  memlane apply   {statistics.median(http['memlane_s']):7.2f} s  {http['memlane_texts_per_s']:8.0f} texts/s")
    print(f"  asyncio+httpx   {statistics.median(http['httpx_s']):7.2f} s  {http['httpx_texts_per_s']:8.0f} texts/s")
    print(f"  throughput ratio memlane/httpx: {http['throughput_ratio']:.2f} (goal >= 0.9)")
    print(f"\nwordllama, {ROWS_PROC} rows: proc: {statistics.median(proc['proc_s']):.2f} s, "
          f"cmd: {statistics.median(proc['cmd_s']):.2f} s, speedup {proc['speedup']:.1f}x")
    OUT.write_text(json.dumps({"http": http, "process": proc}, indent=2) + "\n")
    print(f"written {OUT.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
