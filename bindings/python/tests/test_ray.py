"""The distributed re-embed on a real local Ray cluster (127.0.0.1, four logical GPUs), on
the hostile day: 50k rows, four actors, one actor SIGKILLed in the middle of a fragment,
the driver SIGKILLed and resumed, and a second process writing through memlane's public
API (adds, upserts, deletes) and compacting the dataset with Lance while it runs."""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Dict, Iterator, List

import numpy as np
import pyarrow as pa
import pytest

import memlane

ray = pytest.importorskip("ray")

HERE = Path(__file__).resolve().parent
JOB = HERE / "ray_job.py"
ROWS = 50_000
FRAGMENT_ROWS = 2_000

_spec = importlib.util.spec_from_file_location("ray_job", JOB)
assert _spec and _spec.loader
job = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(job)

MIGRATION = """
description = "Re-embed with the new model on the cluster"

[[steps]]
op = "add_space"
space = "new"
model = "random-projection"
revision = "1"
dimension = 64
normalized = true

[[steps]]
op = "reembed"
space = "new"
embedder = "e"
batch_size = 256
sample = 200
checkpoint_seconds = 2
"""


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    os.environ.setdefault("RAY_ENABLE_UV_RUN_RUNTIME_ENV", "0")
    ray.init(
        num_cpus=8,
        num_gpus=4,
        include_dashboard=False,
        log_to_driver=False,
        _node_ip_address="127.0.0.1",
    )
    try:
        yield ray.get_runtime_context().gcs_address
    finally:
        ray.shutdown()


def _spawn(role: str, *args: str) -> subprocess.Popen:
    env = dict(os.environ, RAY_USAGE_STATS_ENABLED="0", RAY_ENABLE_UV_RUN_RUNTIME_ENV="0")
    return subprocess.Popen(
        [sys.executable, str(JOB), role, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def _make_store(path: Path) -> None:
    ids = [f"r-{i}" for i in range(ROWS)]
    texts = [f"memory {i}: the user mentioned topic {i % 977} on day {i % 365}" for i in range(ROWS)]
    old = job.old_model(texts)
    table = pa.table(
        {
            "id": ids,
            "content": texts,
            "vec_old": pa.FixedSizeListArray.from_arrays(pa.array(old.ravel()), job.OLD_DIM),
        }
    )
    space = memlane.Space("old", job.OLD_DIM, model="old-model", normalized=True)
    memlane.create(path, [space], data=table, rows_per_fragment=FRAGMENT_ROWS)


def _checkpoint_embedded(store: memlane.Store) -> int:
    st = store.refresh().status().data
    cp = ((st.get("in_flight") or {}).get("checkpoint")) or {}
    return int(cp.get("embedded") or 0)


def _written_after_compaction(workdir: Path) -> bool:
    ops = [json.loads(line).get("op") for line in (workdir / "writes.log").read_text().splitlines()]
    return "compact" in ops and any(op in ("put", "delete") for op in ops[ops.index("compact") + 1 :])


def _expected(workdir: Path) -> Dict[str, str]:
    state = {f"r-{i}": f"memory {i}: the user mentioned topic {i % 977} on day {i % 365}" for i in range(ROWS)}
    for line in (workdir / "writes.log").read_text().splitlines():
        w = json.loads(line)
        if w.get("op") == "put":
            state[w["id"]] = w["content"]
        elif w.get("op") == "delete":
            state.pop(w["id"], None)
    return state


def test_ray_reembed_survives_actor_and_driver_kills_and_concurrent_writers(
    cluster: str, tmp_path: Path
) -> None:
    uri = str(tmp_path / "store.lance")
    work = tmp_path / "work"
    work.mkdir()
    migs = tmp_path / "migs"
    migs.mkdir()
    (migs / "0001_new_model.toml").write_text(MIGRATION)
    _make_store(Path(uri))
    watch = memlane.open(uri)

    writer = _spawn("writer", uri, str(work))
    # 1. the driver is SIGKILLed once two fragments' worth of rows are committed
    first = _spawn("driver", uri, str(migs), cluster, str(work))
    deadline = time.monotonic() + 600
    while _checkpoint_embedded(watch) < 2 * FRAGMENT_ROWS:
        assert first.poll() is None, f"driver ended before it was killed: {first.communicate()}"
        assert time.monotonic() < deadline, "no backfill commit within 10 minutes"
        time.sleep(0.2)
    first.send_signal(signal.SIGKILL)
    first.wait()
    assert watch.refresh().active_space == "old"

    # 2. resumed, while one actor dies mid-fragment and the writer also compacts
    (work / "phase-b").touch()
    (work / "kill-actor").touch()
    at_kill = _checkpoint_embedded(watch)
    second = _spawn("driver", uri, str(migs), cluster, str(work))
    # the compaction lands while the resumed driver is half-way: its workers' results
    # for rewritten fragments must be dropped and their rows embedded again
    deadline = time.monotonic() + 600
    while _checkpoint_embedded(watch) <= at_kill and second.poll() is None:
        assert time.monotonic() < deadline, "the resumed driver never committed"
        time.sleep(0.2)
    (work / "compact-now").touch()
    out, err = second.communicate(timeout=900)
    assert second.returncode == 0, err[-4000:]
    report = json.loads(out.strip().splitlines()[-1])
    assert (work / "actor-killed").exists(), "the kill switch was never reached"
    assert not (work / "kill-actor").exists()
    reembed = [s for m in report["migrations"] for s in m["steps"] if s["op"] == "reembed"][0]
    stats = reembed["backfill"]
    assert stats["retries"] >= 1, stats
    assert len(stats["workers"]) >= 4, stats
    assert stats["commits"] >= 1, stats

    # 3. the writer stops after its compaction; a last apply catches up its last writes
    # (and until one write through memlane follows it: `verify` reports a foreign commit
    # after memlane's last as a problem, which is not what this test is about)
    deadline = time.monotonic() + 300
    while not _written_after_compaction(work):
        assert writer.poll() is None, writer.communicate()
        assert time.monotonic() < deadline, "the compaction never landed"
        time.sleep(0.2)
    (work / "stop").touch()
    writer.communicate(timeout=120)
    last = _spawn("driver", uri, str(migs), cluster, str(work))
    out, err = last.communicate(timeout=600)
    assert last.returncode == 0, err[-4000:]

    writes = [json.loads(line) for line in (work / "writes.log").read_text().splitlines()]
    errors = [w for w in writes if "error" in w]
    assert not errors, errors[:5]
    assert sum(1 for w in writes if w.get("op") in ("put", "delete")) >= 20

    # the id set is exact; every live row's new vector is the model's for its content
    store = memlane.open(uri)
    assert store.active_space == "new"
    expected = _expected(work)
    t = store.to_arrow(["id", "content", "vec_new"])
    ids: List[str] = t.column("id").to_pylist()
    assert len(ids) == len(set(ids))
    got = dict(zip(ids, t.column("content").to_pylist()))
    assert got == expected
    vecs = np.asarray(t.column("vec_new").combine_chunks().flatten(), dtype=np.float32).reshape(-1, job.NEW_DIM)
    want = job.new_model(t.column("content").to_pylist())
    bad = [ids[i] for i in np.nonzero(~np.all(np.abs(vecs - want) < 1e-6, axis=1))[0][:5]]
    assert not bad, f"rows whose new vector is not the embedding of their content: {bad}"

    v = store.verify(migs)
    assert v.ok, str(v)
    applied = [h for h in store.history().versions if (h.get("entry") or {}).get("action") == "migration"]
    assert [h["entry"]["migration"] for h in applied] == [1], applied

    # embedded at most once per text beyond what the faults interrupted: the driver's
    # tasks in flight when it was killed (two per actor), those in flight or waiting to
    # commit when the compaction rewrote their fragments (two per actor plus a commit
    # group of four), and the killed actor's fragment
    seen: Counter = Counter()
    for log in work.glob("embedded-*.log"):
        seen.update(json.loads(line) for line in log.read_text().splitlines())
    live = set(expected.values())
    twice = sum(n - 1 for t_, n in seen.items() if t_ in live and n > 1)
    allowance = (2 * 4 + (2 * 4 + 4) + 1) * FRAGMENT_ROWS
    print(f"embedded {sum(seen.values())} texts for {len(seen)} distinct; repeated {twice}; {stats}")
    assert twice <= allowance, (twice, allowance)

