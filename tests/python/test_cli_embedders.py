"""memlane's embedders as users run models, through the CLI: a real model (wordllama)
behind a real OpenAI-compatible HTTP server on 127.0.0.1 (`openai_server.py`), and the
same model as a long-lived JSON-lines process (`wordllama_proc.py`).

The server fails the way real ones do: 429 with Retry-After, dropped connections, a
request that hangs past the timeout, vectors of the wrong dimension. Each ends in the
right retry or a clear error with nothing of the failing batch committed. A 20k-row
re-embed through the HTTP embedder is SIGKILLed and resumed; the server's log proves no
committed row's text is requested again.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable, Dict, Iterator, List, Tuple

import lance
import numpy as np
import pytest

from test_interop import CORPUS, ROOT, memlane_bin, run

wordllama = pytest.importorskip("wordllama")

HERE = Path(__file__).resolve().parent
SERVER = HERE / "openai_server.py"
PROC = HERE / "wordllama_proc.py"
VEC, SRC = "vec_wl", "vec_wl__src"

MIGRATION = """
description = "Embed every memory with wordllama (served), 256 dims"

[[steps]]
op = "add_space"
space = "wl"
provider = "dleemiller"
model = "wordllama-l2-supercat"
revision = "0.4.0.post1"
dimension = 256
metric = "cosine"
normalized = true

[[steps]]
op = "reembed"
space = "wl"
embedder = "wl"

[[invariants]]
check = "vectors_valid"
space = "wl"
"""


@pytest.fixture(scope="module")
def model() -> Callable[[List[str]], np.ndarray]:
    sys.path.insert(0, str(HERE))
    from openai_server import wordllama_model

    return wordllama_model()


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Callable[..., Tuple[str, Path]]]:
    procs: List[subprocess.Popen] = []

    def start(*args: str) -> Tuple[str, Path]:
        log = tmp_path / f"server{len(procs)}.jsonl"
        p = subprocess.Popen(
            [sys.executable, str(SERVER), "--model", "wordllama", "--log", str(log), *args],
            stdout=subprocess.PIPE,
            text=True,
        )
        procs.append(p)
        line = p.stdout.readline() if p.stdout else ""
        assert line.startswith("PORT "), f"server did not start: {line!r}"
        return f"http://127.0.0.1:{int(line.split()[1])}/v1", log

    yield start
    for p in procs:
        p.kill()
        p.wait()


def requests_of(log: Path) -> List[dict]:
    if not log.exists():
        return []
    return [json.loads(x) for x in log.read_text().splitlines() if x.strip()]


def write_config(folder: Path, table: str) -> None:
    (folder / "memlane.toml").write_text("[embedders.wl]\n" + table.strip() + "\n")


def http_table(url: str, **kw: object) -> str:
    opts = {"batch_size": 16, "concurrency": 4, "timeout_secs": 30, "max_retries": 4, "max_backoff_secs": 2, **kw}
    lines = ['type = "http"', f'url = "{url}"', 'model = "wordllama"']
    lines += [f"{k} = {json.dumps(v)}" for k, v in opts.items()]
    return "\n".join(lines)


def make_store(tmp: Path, data: Path = CORPUS, rows_per_fragment: int = 100_000) -> Tuple[Path, Path]:
    store, folder = tmp / "store", tmp / "migrations"
    run("init", store, "--from", data, "--rows-per-fragment", rows_per_fragment)
    folder.mkdir()
    (folder / "0001_wl.toml").write_text(MIGRATION)
    return store, folder


def apply(store: Path, folder: Path, ok: bool = True) -> subprocess.CompletedProcess[str]:
    return run("--json", "apply", store, folder, "--yes", ok=ok)


def embedder_calls(report: dict) -> dict:
    """The backfill's embedder counters from an apply report."""
    for m in report["migrations"]:
        for s in m["steps"]:
            e = (s.get("backfill") or {}).get("embedder")
            if e:
                return e
    raise AssertionError(f"no embedder counters in {json.dumps(report)[:2000]}")


def vectors(store: Path) -> Dict[str, np.ndarray]:
    t = lance.dataset(str(store)).to_table(columns=["id", "content", VEC])
    return {
        i: (c, None if v is None else np.asarray(v, dtype=np.float32))
        for i, c, v in zip(t["id"].to_pylist(), t["content"].to_pylist(), t[VEC].to_pylist())
    }


def assert_vectors_are_the_models(store: Path, model: Callable[[List[str]], np.ndarray]) -> None:
    rows = vectors(store)
    ids = sorted(rows)
    assert all(rows[i][1] is not None for i in ids), "rows without a vector"
    want = model([rows[i][0] for i in ids])
    got = np.stack([rows[i][1] for i in ids])
    cos = np.sum(want * got, axis=1)
    assert cos.min() > 0.9999, f"vectors differ from the model's: min cosine {cos.min()}"


def test_http_embedder_reembeds_with_a_served_model(tmp_path: Path, server, model) -> None:
    url, log = server()
    store, folder = make_store(tmp_path)
    write_config(folder, http_table(url))
    report = json.loads(apply(store, folder).stdout)
    assert_vectors_are_the_models(store, model)
    reqs = requests_of(log)
    calls = embedder_calls(report)
    # every request of the step: the fingerprint's 8 canaries, then the backfill
    assert all(r["status"] == 200 for r in reqs)
    assert calls["requests"] == len(reqs) and calls["retries"] == 0
    assert calls["texts"] == sum(r["n"] for r in reqs) == len(vectors(store)) + 8
    assert calls["tokens"] == sum(sum(len(t.split()) for t in r["texts"]) for r in reqs)
    assert max(r["n"] for r in reqs) <= 16
    run("verify", store)


def test_429_is_retried_after_retry_after(tmp_path: Path, server, model) -> None:
    url, log = server("--fault", "429:3", "--skip", "1")
    store, folder = make_store(tmp_path)
    write_config(folder, http_table(url))
    report = json.loads(apply(store, folder).stdout)
    reqs = requests_of(log)
    limited = [r for r in reqs if r["status"] == 429]
    assert len(limited) == 3
    for r in limited:
        # its texts were asked again, no sooner than the server's Retry-After (1 s)
        again = [x for x in reqs if x["texts"] == r["texts"] and x["status"] == 200 and x["t"] > r["t"]]
        assert again, "a rate-limited request was not retried"
        assert again[0]["t"] - r["t"] >= 1.0
    assert embedder_calls(report)["retries"] == 3
    assert_vectors_are_the_models(store, model)


def test_dropped_connections_are_retried(tmp_path: Path, server, model) -> None:
    url, log = server("--fault", "drop:3", "--skip", "1")
    store, folder = make_store(tmp_path)
    write_config(folder, http_table(url))
    report = json.loads(apply(store, folder).stdout)
    reqs = requests_of(log)
    assert sum(r["status"] == 0 for r in reqs) == 3
    assert embedder_calls(report)["retries"] >= 3
    assert_vectors_are_the_models(store, model)
    run("verify", store)


def failed_apply_commits_nothing(store: Path, folder: Path, needle: List[str]) -> str:
    p = apply(store, folder, ok=False)
    assert p.returncode == 1, p.stderr
    err = p.stderr
    for n in needle:
        assert n in err, f"{n!r} not in: {err}"
    assert "/.cargo/" not in err and ".rs:" not in err, err
    # the store is readable at its last good version, and no vector of the batch landed
    ds = lance.dataset(str(store))
    if VEC in ds.schema.names:
        assert ds.count_rows(filter=f"{VEC} IS NOT NULL") == 0
    run("verify", store)
    return err


def test_a_hung_server_times_out_with_a_clear_error_and_apply_resumes(tmp_path: Path, server, model) -> None:
    url, _ = server("--fault", "hang", "--skip", "1")
    store, folder = make_store(tmp_path)
    write_config(folder, http_table(url, timeout_secs=1, max_retries=1))
    # the failing request is the backfill's first: its first record is the store's first row
    first = lance.dataset(str(store)).to_table(columns=["id"])["id"][0].as_py()
    failed_apply_commits_nothing(
        store, folder, ["embedder `wl`", f"first record `{first}`", "no answer from", "within 1 s", "after 2 tries"]
    )
    # a healthy server: the same apply resumes and completes
    url2, _ = server()
    write_config(folder, http_table(url2))
    apply(store, folder)
    assert_vectors_are_the_models(store, model)
    run("verify", store)


def test_wrong_dimension_names_the_record_and_commits_nothing(tmp_path: Path, server) -> None:
    url, _ = server("--fault", "dim", "--skip", "1")
    store, folder = make_store(tmp_path)
    write_config(folder, http_table(url))
    failed_apply_commits_nothing(store, folder, ["embedder `wl`", "dimension 256", "first record `"])


def test_http_resume_after_sigkill_requests_no_committed_row_again(tmp_path: Path, server, model) -> None:
    rows = [json.loads(x) for x in CORPUS.read_text().splitlines() if x.strip()]
    data = tmp_path / "20k.jsonl"
    with data.open("w") as f:
        for i in range(20_000):
            r = dict(rows[i % len(rows)])
            r["id"] = f"m{i:05d}"
            r["content"] = f"{r['content']} (memory {i})"
            f.write(json.dumps(r) + "\n")
    # 40 fragments; a small latency so the kill lands mid-backfill
    store, folder = make_store(tmp_path, data, rows_per_fragment=500)
    url, log = server("--latency", "0.02")
    write_config(folder, http_table(url, batch_size=64, concurrency=4))
    v0 = lance.dataset(str(store)).version
    p = subprocess.Popen(
        [memlane_bin(), "apply", str(store), str(folder), "--yes"],
        cwd=ROOT,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    # kill it once two backfill commits landed (the expand commit is the first)
    while lance.dataset(str(store)).latest_version < v0 + 3:
        assert p.poll() is None, f"apply ended before it was killed: {p.stderr.read() if p.stderr else ''}"
        time.sleep(0.05)
    os.killpg(p.pid, signal.SIGKILL)
    p.wait()
    t = lance.dataset(str(store)).to_table(columns=["id", "content", SRC])
    committed = {c for c, s in zip(t["content"].to_pylist(), t[SRC].to_pylist()) if s is not None}
    assert 0 < len(committed) < 20_000, len(committed)
    first_run = sum(r["n"] for r in requests_of(log) if r["status"] == 200)
    url2, log2 = server()
    write_config(folder, http_table(url2, batch_size=64, concurrency=4))
    apply(store, folder)
    asked = [t for r in requests_of(log2) for t in r["texts"]]
    again = committed.intersection(asked)
    assert not again, f"{len(again)} committed rows were requested again, e.g. {sorted(again)[:3]}"
    # everything else was asked at most once more (plus the fingerprint's 8 canaries)
    assert len(asked) <= 20_000 - len(committed) + 8
    print(f"committed before the kill: {len(committed)}; texts asked: {first_run} + {len(asked)}")
    assert_vectors_are_the_models(store, model)
    run("verify", store)


def proc_spec(*args: str) -> str:
    return f'type = "process"\ncommand = "{sys.executable} {PROC} {" ".join(args)}"\nbatch_size = 32\ntimeout_secs = 20'


def test_model_process_survives_a_crash_and_a_hang(tmp_path: Path, model) -> None:
    count = tmp_path / "requests.log"
    for fault in ("--crash-on", "--hang-on"):
        sub = tmp_path / fault.strip("-")
        sub.mkdir()
        store, folder = make_store(sub)
        timeout = "\ntimeout_secs = 5" if fault == "--hang-on" else ""
        spec = proc_spec(fault, "3", "--once", str(sub / "once"), "--log", str(count)).replace("\ntimeout_secs = 20", timeout)
        write_config(folder, spec)
        report = json.loads(apply(store, folder).stdout)
        calls = embedder_calls(report)
        assert calls["restarts"] == 1 and calls["retries"] == 1, calls
        assert_vectors_are_the_models(store, model)
        run("verify", store)


def test_model_process_that_keeps_crashing_fails_after_its_restarts(tmp_path: Path) -> None:
    store, folder = make_store(tmp_path)
    write_config(folder, proc_spec("--crash-on", "2") + "\nmax_restarts = 2")
    p = apply(store, folder, ok=False)
    assert p.returncode == 1
    assert "exited with exit status: 3" in p.stderr and "restarted 2 time(s)" in p.stderr, p.stderr
    run("verify", store)


def test_process_embedder_is_faster_than_a_command_per_batch(tmp_path: Path) -> None:
    """Not a timing assertion: both run to completion; the speedup is `make bench`'s."""
    for spec in (f"proc:{sys.executable} {PROC}", f"cmd:{sys.executable} {PROC}"):
        sub = tmp_path / spec[:4]
        sub.mkdir()
        store, folder = make_store(sub)
        run("apply", store, folder, "--yes", "--embedder", f"wl={spec}")
        assert all(v is not None for _, v in vectors(store).values())


def test_configuration_errors_name_the_file_line_and_fix(tmp_path: Path, server) -> None:
    store, folder = make_store(tmp_path)
    (folder / "memlane.toml").write_text('# embedders\n[embedders.wl]\ntype = "http"\nurl = "http://x/v1"\nmodel = "m"\nconcurency = 3\n')
    p = apply(store, folder, ok=False)
    assert p.returncode == 1 and "memlane.toml line 2 [embedders.wl]" in p.stderr and "concurency" in p.stderr, p.stderr
    (folder / "memlane.toml").write_text('[embedders.wl]\ntype = "http"\nurl = "http://x/v1"\nmodel = "m"\napi_key = "sk-secret"\n')
    p = apply(store, folder, ok=False)
    assert "api_key_env" in p.stderr and "sk-secret" not in p.stderr, p.stderr
    url, _ = server()
    write_config(folder, http_table(url, api_key_env="MEMLANE_TEST_UNSET_KEY"))
    env_p = subprocess.run(
        [memlane_bin(), "apply", str(store), str(folder), "--yes"],
        capture_output=True, text=True, cwd=ROOT, env={k: v for k, v in os.environ.items() if k != "MEMLANE_TEST_UNSET_KEY"},
    )
    assert env_p.returncode == 1 and "MEMLANE_TEST_UNSET_KEY" in env_p.stderr, env_p.stderr
    # the key, when set, is sent and never printed or recorded
    secret = "sk-test-0123456789"
    env = {**os.environ, "MEMLANE_TEST_UNSET_KEY": secret}
    ok = subprocess.run(
        [memlane_bin(), "--json", "apply", str(store), str(folder), "--yes"], capture_output=True, text=True, cwd=ROOT, env=env
    )
    assert ok.returncode == 0, ok.stderr
    assert secret not in ok.stdout + ok.stderr
    hist = run("--json", "history", store).stdout
    assert secret not in hist
    # the one-line form on the command line overrides the file
    wrong = run("apply", store, folder, "--yes", "--embedder", "wl=http:http://127.0.0.1:9/v1,model=wordllama,modle=x", ok=False)
    assert "modle" in wrong.stderr


def test_a_refused_request_names_the_status_and_is_not_retried(tmp_path: Path, server) -> None:
    url, log = server()
    store, folder = make_store(tmp_path)
    table = http_table(url).replace('model = "wordllama"', 'model = "no-such-model"')
    write_config(folder, table)
    err = failed_apply_commits_nothing(store, folder, ["HTTP 404 Not Found", "no-such-model", "check the URL"])
    assert "after" not in err.split("HTTP 404")[1].split(";")[0]
    assert len(requests_of(log)) == 1, "a 404 is not retried"


def test_the_request_rate_limit_holds(tmp_path: Path, server, model) -> None:
    url, log = server()
    store, folder = make_store(tmp_path)
    # 600 a minute: a bucket of 10, refilled at 10 a second
    write_config(folder, http_table(url, requests_per_minute=600))
    apply(store, folder)
    t = sorted(r["t"] for r in requests_of(log))
    assert len(t) > 25
    # any 21 consecutive requests span at least the 1 s the bucket needs to refill
    # (a lower bound, whatever the machine's speed; 0.2 s allowed for answer jitter)
    assert min(t[i + 20] - t[i] for i in range(len(t) - 20)) >= 0.8
    assert_vectors_are_the_models(store, model)
