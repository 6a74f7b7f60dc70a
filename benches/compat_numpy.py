"""numpy side of `cargo bench -p memlane-benches --bench compat`.

The Rust bench writes the paired sample as raw little-endian float32 files (`new.f32`,
`old.f32`, row-major, no header) and runs this script on them, so both sides time the
same data. Prints one JSON object (last line of stdout) with median timings and the
metric values, which the bench compares with its own.

Needs numpy only (pinned in bindings/python/requirements-test.txt, installed into
$HOME/.cache/memlane/venv by `make deps`). Thread count is whatever OpenBLAS picks; the
bench sets OPENBLAS_NUM_THREADS=1 for the single-thread column.

    python benches/compat_numpy.py DIR N NEW_DIM OLD_DIM K REPS
"""

import json
import os
import sys
import time

import numpy as np


def knn(x, k, block=1024):
    """Exact cosine top-k of every row among the other rows (sets, unordered)."""
    x = x / np.linalg.norm(x, axis=1, keepdims=True)
    n = x.shape[0]
    out = np.empty((n, k), dtype=np.int64)
    for s in range(0, n, block):
        e = min(n, s + block)
        sc = x[s:e] @ x.T
        sc[np.arange(e - s), np.arange(s, e)] = -np.inf  # a row is not its own neighbour
        out[s:e] = np.argpartition(sc, n - k, axis=1)[:, n - k:]
    return out


def shared(a, b):
    """Per row, how many ids the two k-sets share."""
    return (a[:, :, None] == b[:, None, :]).sum(axis=(1, 2))


def neighbourhood(old, new, k, rng):
    """overlap@k (Jaccard) and recall@k (|A∩B|/k) with a shuffled-pairing baseline."""
    a, b = knn(old, k), knn(new, k)
    c = shared(a, b)
    # Random single-cycle derangement: record i paired with new row p[i].
    n = a.shape[0]
    order = rng.permutation(n)
    p = np.empty(n, dtype=np.int64)
    p[order] = np.roll(order, -1)
    inv = np.empty(n, dtype=np.int64)
    inv[p] = np.arange(n)
    cb = shared(a, inv[b[p]])
    jac = lambda s: s / (2 * k - s)
    return {
        "overlap": float(jac(c).mean()),
        "overlap_baseline": float(jac(cb).mean()),
        "recall": float((c / k).mean()),
        "recall_baseline": float((cb / k).mean()),
    }


def procrustes(old, new):
    """Orthogonal Procrustes of new onto old (rows normalised, f64) and its fit."""
    x = old.astype(np.float64)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    y = new.astype(np.float64)
    y /= np.linalg.norm(y, axis=1, keepdims=True)
    u, s, vt = np.linalg.svd(y.T @ x, full_matrices=False)
    w = u @ vt
    yw = y @ w
    scale = s.sum() / np.einsum("ij,ij->", yw, yw)
    aligned = scale * yw
    residual = np.linalg.norm(aligned - x) / np.linalg.norm(x)
    cos = np.einsum("ij,ij->i", aligned, x) / (
        np.linalg.norm(aligned, axis=1) * np.linalg.norm(x, axis=1)
    )
    np.sort(cos)  # memlane also summarises the per-row cosines (quantiles)
    return {
        "residual": float(residual),
        "mean_cosine": float(cos.mean()),
        "scale": float(scale),
    }, (scale * w).astype(np.float32)


def per_query(new, weights, queries=4000):
    """One query at a time, as a server would: normalise, then `q @ W`."""
    qs = new[:queries]
    t = time.perf_counter()
    for q in qs:
        out = (q @ weights) * (1.0 / np.sqrt(q @ q))
    del out
    return (time.perf_counter() - t) / len(qs)


def timed(reps, f):
    secs, result = [], None
    for _ in range(reps):
        t = time.perf_counter()
        result = f()
        secs.append(time.perf_counter() - t)
    return float(np.median(secs)), result


def main():
    folder, n, d_new, d_old, k, reps = sys.argv[1:7]
    n, d_new, d_old, k, reps = int(n), int(d_new), int(d_old), int(k), int(reps)
    new = np.fromfile(os.path.join(folder, "new.f32"), dtype="<f4").reshape(n, d_new)
    old = np.fromfile(os.path.join(folder, "old.f32"), dtype="<f4").reshape(n, d_old)
    rng = np.random.default_rng(7)
    knn_secs, scores = timed(reps, lambda: neighbourhood(old, new, k, rng))
    proc_secs, (proc, weights) = timed(reps, lambda: procrustes(old, new))
    apply_secs = float(np.median([per_query(new, weights) for _ in range(reps)]))
    print(
        json.dumps(
            {
                "numpy": np.__version__,
                "openblas_threads": os.environ.get("OPENBLAS_NUM_THREADS", "default"),
                "cpus": os.cpu_count(),
                "neighbourhood_secs": knn_secs,
                "neighbourhood": scores,
                "procrustes_secs": proc_secs,
                "procrustes": proc,
                "apply_dense_secs_per_query": apply_secs,
            }
        )
    )


if __name__ == "__main__":
    main()
