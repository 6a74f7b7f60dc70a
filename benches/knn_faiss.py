"""faiss-cpu side of `cargo bench --bench knn_large`: the same paired sample, HNSW with
the same M / efConstruction / efSearch as memlane's hnsw_rs path.

Reads `new.f32` / `old.f32` (raw little-endian float32, row-major) from DIR, and for
each space: normalises (cosine as inner product), builds `IndexHNSWFlat(d, M,
METRIC_INNER_PRODUCT)`, searches every row for its k + 1 nearest (itself dropped), and
measures recall@k against exact search (numpy) on the first CHECK rows of a seeded
permutation. Prints one JSON object (the last line of stdout).

    python benches/knn_faiss.py DIR N NEW_DIM OLD_DIM K M EF_CONSTRUCTION EF_SEARCH CHECK
"""

import json
import sys
import time

import faiss
import numpy as np


def load(path, n, d):
    x = np.fromfile(path, dtype="<f4").reshape(n, d)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-30)


def space(x, k, m, efc, efs, check):
    t = time.perf_counter()
    index = faiss.IndexHNSWFlat(x.shape[1], m, faiss.METRIC_INNER_PRODUCT)
    index.hnsw.efConstruction = efc
    index.add(x)
    index.hnsw.efSearch = efs
    _, ids = index.search(x, k + 1)
    secs = time.perf_counter() - t
    rows = np.random.default_rng(7).permutation(x.shape[0])[:check]
    hits = 0
    for r in rows:
        got = [j for j in ids[r] if j != r][:k]
        s = x @ x[r]
        s[r] = -np.inf
        truth = np.argpartition(-s, k)[:k]
        hits += len(set(got) & set(truth.tolist()))
    return secs, hits / (len(rows) * k)


def main():
    d, n, dn, do, k, m, efc, efs, check = sys.argv[1], *map(int, sys.argv[2:])
    out = {"threads": faiss.omp_get_max_threads()}
    total = 0.0
    for name, dim in (("new", dn), ("old", do)):
        secs, recall = space(load(f"{d}/{name}.f32", n, dim), k, m, efc, efs, check)
        out[name] = {"secs": secs, "recall_vs_exact": recall}
        total += secs
    out["secs"] = total
    print(json.dumps(out))


if __name__ == "__main__":
    main()
