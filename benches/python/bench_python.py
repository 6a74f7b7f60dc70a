"""Python package benchmarks (issue 5), memlane and its peer in the same run:

1. ``store.add`` of N x 384 (default 1M) from a pyarrow Table against
   ``lance.write_dataset`` of the same table (pylance 14.0.2, same Lance release);
2. per-batch overhead of a Python embedder callback: the same re-embed through a Python
   callable that returns a constant array, in batches of 64 and of 4096; the time
   difference divided by the difference in calls is what one crossing into Python and
   back costs.

Each figure is the median of REPS runs. Run through ``make bench`` (release wheel).
usage: python benches/python/bench_python.py [ROWS] [REPS]
"""

from __future__ import annotations

import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import lance
import numpy as np
import pyarrow as pa

import memlane

DIM = 384


def table(n: int) -> pa.Table:
    rng = np.random.default_rng(0)
    v = rng.standard_normal((n, DIM), dtype=np.float32)
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    return pa.table(
        {
            "id": pa.array([f"r{i}" for i in range(n)], pa.string()),
            "content": pa.array([f"memory {i} about parsing JSON documents" for i in range(n)], pa.string()),
            "vec_s": pa.FixedSizeListArray.from_arrays(pa.array(v.ravel()), DIM),
        }
    )


def bench_add(n: int, reps: int, root: Path) -> None:
    t = table(n)
    space = memlane.Space("s", DIM, model="bench", normalized=True)
    ml, ln = [], []
    for r in range(reps):
        d = root / f"lance{r}"
        t0 = time.perf_counter()
        lance.write_dataset(t, str(d), max_rows_per_file=65536, enable_stable_row_ids=True)
        ln.append(time.perf_counter() - t0)
        shutil.rmtree(d)
        d = root / f"mem{r}"
        store = memlane.create(d, [space], plain=True)
        t0 = time.perf_counter()
        store.add(t)
        ml.append(time.perf_counter() - t0)
        assert len(store) == n
        shutil.rmtree(d)
    m, l = statistics.median(ml), statistics.median(ln)
    print(f"store.add {n} x {DIM} from pyarrow: memlane {m:.2f} s, lance.write_dataset {l:.2f} s, ratio {m / l:.2f}x (median of {reps})")


def bench_callback(n: int, reps: int, root: Path) -> None:
    """Per-batch cost of the Python callback path: the same re-embed of ``n`` rows with a
    Python callable that returns a constant array (no model work), in batches of 64 and
    of 4096; (T64 - T4096) / (batches64 - batches4096) is what one more crossing into
    Python and back (texts to a list of str, the array back to Rust, checks) costs."""
    recs = pa.table({"id": [f"r{i}" for i in range(n)], "content": [f"memory {i} about JSON" for i in range(n)]})
    x = np.full((4096, 64), 1 / 8, np.float32)

    def constant(texts):
        return x[: len(texts)]

    def run(batch: int) -> float:
        d = root / "cb"
        shutil.rmtree(d, ignore_errors=True)
        folder = root / f"migs{batch}"
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir()
        (folder / "0001_b.toml").write_text(
            '[[steps]]\nop = "add_space"\nspace = "b"\nmodel = "const"\ndimension = 64\nnormalized = true\n\n'
            f'[[steps]]\nop = "reembed"\nspace = "b"\nembedder = "py"\nbatch_size = {batch}\n'
        )
        store = memlane.create(d, plain=True, data=recs)
        t0 = time.perf_counter()
        store.apply(folder, embedders={"py": constant}, progress=False)
        return time.perf_counter() - t0

    small, large = [], []
    for _ in range(reps):
        small.append(run(64))
        large.append(run(4096))
    s, l = statistics.median(small), statistics.median(large)
    bs, bl = -(-n // 64), -(-n // 4096)
    per = (s - l) / (bs - bl)
    print(
        f"re-embed of {n} rows through a Python callable: batches of 64 {s:.2f} s ({bs} calls), "
        f"of 4096 {l:.2f} s ({bl} calls): {per * 1e6:.0f} us per extra batch "
        f"({per / 64 * 1e6:.2f} us per row at batch 64)"
    )


def main() -> None:
    args = [a for a in sys.argv[1:] if not a.startswith("-")]
    n = int(args[0]) if args else 1_000_000
    reps = int(args[1]) if len(args) > 1 else 3
    root = Path(tempfile.mkdtemp(prefix="memlane-pybench-"))
    try:
        bench_add(n, reps, root)
        bench_callback(min(n, 200_000), reps, root)
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
