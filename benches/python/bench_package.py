"""The Python package users install (the release wheel), against its peers in the same
run: ``store.add`` of N x 384 against ``lance.write_dataset`` of the same table, and an
exact k=10 search (as a list of hits, and through the LanceDB-style query builder with
``to_list()``) against lancedb's flat search on the same Lance dataset. Medians; the
figures (and the peer's) go to benches/results/python_package.json.

usage: python benches/python/bench_package.py [ROWS] [REPS] [QUERIES]
"""

from __future__ import annotations

import json
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Dict, List

import lance
import lancedb
import numpy as np
import pyarrow as pa

import memlane

DIM = 384
ROOT = Path(__file__).resolve().parents[2]


def table(n: int, seed: int) -> pa.Table:
    rng = np.random.default_rng(seed)
    v = rng.normal(size=(n, DIM)).astype(np.float32)
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    return pa.table(
        {
            "id": [f"r{i}" for i in range(n)],
            "content": [f"memory number {i}" for i in range(n)],
            "vec_s": pa.FixedSizeListArray.from_arrays(pa.array(v.ravel()), DIM),
        }
    )


def timed(f: Callable[[], Any]) -> float:
    t = time.perf_counter()
    f()
    return time.perf_counter() - t


def main() -> None:
    rows = int(sys.argv[1]) if len(sys.argv) > 1 else 200_000
    reps = int(sys.argv[2]) if len(sys.argv) > 2 else 3
    queries = int(sys.argv[3]) if len(sys.argv) > 3 else 30
    t = table(rows, 1)
    space = memlane.Space("s", DIM, provider="bench", model="random", normalized=True)
    work = Path(tempfile.mkdtemp(prefix="memlane-bench-"))
    add_s: List[float] = []
    lance_s: List[float] = []
    for r in range(reps):  # interleaved: both see the same machine state
        p = work / f"m{r}"
        store = memlane.create(p, [space], plain=True)
        add_s.append(timed(lambda: store.add(t)))
        lance_s.append(timed(lambda: lance.write_dataset(t, str(work / f"l{r}.lance"))))
    store = memlane.open(work / "m0")
    db = lancedb.connect(work)
    tbl = db.open_table("l0")
    qs = np.random.default_rng(2).normal(size=(queries, DIM)).astype(np.float32)
    mine: List[float] = []
    built: List[float] = []
    theirs: List[float] = []
    same = 0
    for q in qs:
        mine.append(timed(lambda: list(store.search(q, k=10, exact=True))))
        built.append(timed(lambda: store.search(q).limit(10).bypass_vector_index().to_list()))
        got: Dict[str, Any] = {}
        theirs.append(timed(lambda: got.setdefault("r", tbl.search(q, vector_column_name="vec_s").distance_type("cosine").limit(10).to_list())))
        same += [h.id for h in store.search(q, k=10, exact=True)] == [x["id"] for x in got["r"]]
    so = next(Path(memlane.__file__).parent.glob("_memlane*.so"))
    result = {
        "rows": rows,
        "dim": DIM,
        "reps": reps,
        "queries": queries,
        "package": {"memlane": str(Path(memlane.__file__).parent), "so_bytes": so.stat().st_size},
        "add": {"memlane_s": statistics.median(add_s), "lance_write_dataset_s": statistics.median(lance_s)},
        "search_exact_k10": {
            "memlane_ms": 1000 * statistics.median(mine),
            "memlane_query_builder_to_list_ms": 1000 * statistics.median(built),
            "lancedb_ms": 1000 * statistics.median(theirs),
            "same_ids": f"{same}/{queries}",
        },
    }
    result["add"]["ratio"] = result["add"]["memlane_s"] / result["add"]["lance_write_dataset_s"]
    s = result["search_exact_k10"]
    s["ratio"] = s["memlane_ms"] / s["lancedb_ms"]
    s["query_builder_ratio"] = s["memlane_query_builder_to_list_ms"] / s["lancedb_ms"]
    out = ROOT / "benches" / "results" / "python_package.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    print(
        f"add {rows} x {DIM}: memlane {result['add']['memlane_s']:.2f} s, lance.write_dataset "
        f"{result['add']['lance_write_dataset_s']:.2f} s ({result['add']['ratio']:.2f}x); exact k=10: memlane "
        f"{s['memlane_ms']:.1f} ms, builder+to_list {s['memlane_query_builder_to_list_ms']:.1f} ms, lancedb "
        f"{s['lancedb_ms']:.1f} ms ({s['ratio']:.2f}x, {s['query_builder_ratio']:.2f}x); same ids {s['same_ids']}"
    )
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
