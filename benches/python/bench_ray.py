"""Distributed re-embed on Ray (issue 17): memlane's RayExecutor against lance-ray's
``add_columns``, same data, same embedder, same actor count, same Ray cluster, same run.

The embedder simulates a GPU: a fixed latency per batch (``LATENCY`` s per ``BATCH``
texts, sleeping, so actors scale past the machine's cores the way GPUs would) and a
cheap deterministic vector. For 1, 2, 4 and 8 actors, each side re-embeds a fresh copy
of the same N-row table (``FRAGMENTS`` fragments, so every actor count divides the
work evenly) into a 384-d column:

- memlane: ``store.apply(folder, embedders={"e": RayExecutor(model, actors=A)})`` with
  an ``add_space`` + ``reembed`` migration (its time includes the plan, the fingerprint
  check, the commits with state and history, and the completing step's checks);
- lance-ray: ``lance_ray.add_columns(path, transform=<batch_udf>, read_columns=["content"],
  concurrency=A, read_version=V)`` (one ``Merge`` commit at the end).

Then the same with a concurrent writer appending a row every 0.5 s during the run
(4 actors): whether each side's re-embed lands, and whether every row ends with a vector.

Prints a table and writes ``benches/results/ray_reembed.json``.

usage: python benches/python/bench_ray.py [ROWS] [ACTORS...]   (defaults 1000000, 1 2 4 8)
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Callable, Dict, List

os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("RAY_ENABLE_UV_RUN_RUNTIME_ENV", "0")

import lance  # noqa: E402
import numpy as np  # noqa: E402
import pyarrow as pa  # noqa: E402
import ray  # noqa: E402

import memlane  # noqa: E402
from memlane.ray import RayExecutor  # noqa: E402

DIM = 384
BATCH = 1024
LATENCY = 0.05
FRAGMENTS = 64
RESULTS = Path(__file__).resolve().parents[1] / "results" / "ray_reembed.json"

MIGRATION = f"""
[[steps]]
op = "add_space"
space = "vec"
model = "fixed-latency"
revision = "1"
dimension = {DIM}
normalized = true

[[steps]]
op = "reembed"
space = "vec"
embedder = "e"
batch_size = {BATCH}
checkpoint_seconds = 10
"""


class GpuLike:
    """``LATENCY`` seconds per call of up to ``BATCH`` texts, then unit vectors."""

    batch_size = BATCH

    def __call__(self, texts: List[str]) -> np.ndarray:
        time.sleep(LATENCY * -(-len(texts) // BATCH))
        out = np.zeros((len(texts), DIM), dtype=np.float32)
        out[np.arange(len(texts)), [len(t) % DIM for t in texts]] = 1.0
        return out


def lance_ray_udf() -> Any:
    schema = pa.schema([pa.field("vec", pa.list_(pa.float32(), DIM))])
    model = GpuLike()

    @lance.batch_udf(output_schema=schema)
    def embed(batch: pa.RecordBatch) -> pa.RecordBatch:
        v = model(batch.column("content").to_pylist())
        return pa.RecordBatch.from_arrays(
            [pa.FixedSizeListArray.from_arrays(pa.array(v.ravel()), DIM)], schema=schema
        )

    return embed


def make_base(path: Path, rows: int) -> None:
    texts = [f"memory {i}: the user mentioned topic {i % 977} on day {i % 365}" for i in range(rows)]
    table = pa.table({"id": [f"r-{i}" for i in range(rows)], "content": texts})
    memlane.create(path, [], data=table, plain=True, rows_per_fragment=-(-rows // FRAGMENTS))


def run_memlane(path: Path, folder: Path, actors: int) -> float:
    store = memlane.open(str(path))
    t = time.perf_counter()
    with RayExecutor(GpuLike, actors=actors, batch_size=BATCH) as e:
        store.apply(folder, embedders={"e": e}, progress=False)
    secs = time.perf_counter() - t
    cov = store.refresh().coverage("vec")
    assert cov[0] == cov[1], cov
    return secs


def run_lance_ray(path: Path, actors: int) -> float:
    import lance_ray

    v = lance.dataset(str(path)).version
    t = time.perf_counter()
    lance_ray.add_columns(
        str(path),
        transform=lance_ray_udf(),
        read_columns=["content"],
        batch_size=BATCH,
        concurrency=actors,
        read_version=v,
    )
    secs = time.perf_counter() - t
    assert "vec" in lance.dataset(str(path)).schema.names
    return secs


def with_writer(path: Path, write: Callable[[int], None], job: Callable[[], float]) -> Dict[str, Any]:
    stop = threading.Event()
    written: List[int] = []
    errors: List[str] = []

    def loop() -> None:
        k = 0
        while not stop.is_set():
            k += 1
            try:
                write(k)
                written.append(k)
            except Exception as e:  # noqa: BLE001 - reported
                errors.append(f"{type(e).__name__}: {e}"[:200])
            stop.wait(0.5)

    th = threading.Thread(target=loop)
    th.start()
    try:
        secs = job()
        outcome: Dict[str, Any] = {"landed": True, "secs": round(secs, 2)}
    except Exception as e:  # noqa: BLE001 - the point of the drill
        outcome = {"landed": False, "error": f"{type(e).__name__}: {e}"[:400]}
    finally:
        stop.set()
        th.join()
    outcome["writes"] = len(written)
    outcome["write_errors"] = errors[:3]
    return outcome


def main() -> None:
    rows = int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000
    counts = [int(a) for a in sys.argv[2:]] or [1, 2, 4, 8]
    ray.init(num_cpus=max(counts) + 1, include_dashboard=False, log_to_driver=False)
    work = Path(tempfile.mkdtemp(prefix="memlane-bench-ray-"))
    try:
        base = work / "base.lance"
        make_base(base, rows)
        folder = work / "migs"
        folder.mkdir()
        (folder / "0001_reembed.toml").write_text(MIGRATION)
        runs = []
        for a in counts:
            m_path, l_path = work / f"m{a}.lance", work / f"l{a}.lance"
            shutil.copytree(base, m_path)
            shutil.copytree(base, l_path)
            m = run_memlane(m_path, folder, a)
            lr = run_lance_ray(l_path, a)
            runs.append({"actors": a, "memlane_s": round(m, 2), "lance_ray_s": round(lr, 2), "ratio": round(m / lr, 3)})
            print(f"{a} actor(s): memlane {m:.1f} s, lance-ray {lr:.1f} s, ratio {m / lr:.2f}x", flush=True)
            shutil.rmtree(m_path)
            shutil.rmtree(l_path)
        for r in runs:
            first = runs[0]
            r["memlane_rows_per_s"] = round(rows / r["memlane_s"])
            r["lance_ray_rows_per_s"] = round(rows / r["lance_ray_s"])
            r["memlane_scaling"] = round(first["memlane_s"] * first["actors"] / (r["memlane_s"] * r["actors"]), 3)
            r["lance_ray_scaling"] = round(first["lance_ray_s"] * first["actors"] / (r["lance_ray_s"] * r["actors"]), 3)

        # the drill: a writer appends a row every 0.5 s while each side re-embeds
        drill_actors = 4 if 4 in counts else counts[-1]
        m_path, l_path = work / "mw.lance", work / "lw.lance"
        shutil.copytree(base, m_path)
        shutil.copytree(base, l_path)
        writer_store = memlane.open(str(m_path))
        model = GpuLike()

        def memlane_write(k: int) -> None:
            rec = {"id": f"w-{k}", "content": f"written during the re-embed, round {k}"}
            # the writer supplies the new space's vector once the space exists
            embedders = {"vec": model} if "vec" in [s.name for s in writer_store.refresh().spaces] else {}
            writer_store.add([rec], embedders=embedders)

        def lance_write(k: int) -> None:
            lance.write_dataset(
                pa.table({"id": [f"w-{k}"], "content": [f"written during the re-embed, round {k}"]}),
                str(l_path),
                mode="append",
            )

        m_drill = with_writer(m_path, memlane_write, lambda: run_memlane(m_path, folder, drill_actors))
        l_drill = with_writer(l_path, lance_write, lambda: run_lance_ray(l_path, drill_actors))
        cov = memlane.open(str(m_path)).coverage("vec")
        m_drill["rows_with_vector"] = f"{cov[0]}/{cov[1]}"
        print(f"with a concurrent writer ({drill_actors} actors): memlane {m_drill}; lance-ray {l_drill}")
        out = {
            "rows": rows,
            "dim": DIM,
            "fragments": FRAGMENTS,
            "batch": BATCH,
            "latency_per_batch_s": LATENCY,
            "machine_cores": os.cpu_count(),
            "runs": runs,
            "concurrent_writer": {"actors": drill_actors, "memlane": m_drill, "lance_ray": l_drill},
        }
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        RESULTS.write_text(json.dumps(out, indent=2) + "\n")
        print(f"wrote {RESULTS}")
    finally:
        shutil.rmtree(work, ignore_errors=True)
        ray.shutdown()


if __name__ == "__main__":
    main()
