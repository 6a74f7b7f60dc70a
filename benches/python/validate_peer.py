"""The peer of ``memlane validate`` (issue 6 benchmark): the checks a user would write
with pylance + numpy/pandas on a memlane store, vectorised as a careful user would.

Same checks as memlane's built-ins on the last version against the previous one:
ids unique and non-null; ids preserved (set difference); content unchanged per id;
vectors valid (null, dimension, finite, zero, norm of a normalised space);
``supersedes`` targets exist and chains are acyclic; no active record superseded by
an active one, ``updated_at`` not before ``created_at``; drift of the vectors (mean
direction, norms, MMD² with a 199-permutation test on 500-row samples).

Prints one JSON line ``{"secs": ..., "rss_kib": ...}`` (time from opening the dataset
to the last check). Called by ``cargo bench --bench validate`` with the store path.
"""

from __future__ import annotations

import json
import resource
import sys
import time

import lance
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc


def vectors(col: pa.ChunkedArray) -> tuple[np.ndarray, np.ndarray]:
    """(rows, dim) float32 of the non-null vectors, and the null mask."""
    arr = col.combine_chunks()
    nulls = arr.is_null().to_numpy(zero_copy_only=False)
    dim = arr.type.list_size
    flat = arr.values.to_numpy(zero_copy_only=False)
    m = flat.reshape(-1, dim)[~nulls] if nulls.any() else flat.reshape(-1, dim)
    return m, nulls


def mmd2(x: np.ndarray, y: np.ndarray, perms: int, rng: np.random.Generator) -> tuple[float, float]:
    z = np.vstack([x, y]).astype(np.float64)
    sq = (z * z).sum(1)
    d2 = np.maximum(sq[:, None] + sq[None, :] - 2 * z @ z.T, 0)
    bw = np.median(d2[np.triu_indices(len(z), 1)]) or 1.0
    k = np.exp(-d2 / bw)
    n = len(x)

    def stat(idx: np.ndarray) -> float:
        a, b = idx[:n], idx[n:]
        return float(k[np.ix_(a, a)].mean() + k[np.ix_(b, b)].mean() - 2 * k[np.ix_(a, b)].mean())

    idx = np.arange(len(z))
    s0 = stat(idx)
    above = sum(stat(rng.permutation(idx)) >= s0 for _ in range(perms))
    return s0, (above + 1) / (perms + 1)


def main(uri: str) -> None:
    t0 = time.perf_counter()
    ds = lance.dataset(uri)
    prev = lance.dataset(uri, version=ds.version - 1)
    cur = ds.to_table(
        columns=["id", "content", "status", "supersedes", "created_at", "updated_at", "vec_e384"]
    )
    before = prev.to_table(columns=["id", "content"])
    out: dict[str, object] = {}

    ids = cur["id"]
    # ids unique, non-null
    out["ids_null"] = int(ids.null_count)
    out["ids_dup"] = int(len(ids) - len(pc.unique(ids)))

    # ids preserved and content unchanged against the previous version
    a = pd.DataFrame({"id": before["id"].to_pandas(), "c0": before["content"].to_pandas()})
    b = pd.DataFrame({"id": ids.to_pandas(), "c1": cur["content"].to_pandas()})
    j = a.merge(b, on="id", how="outer", indicator=True)
    out["ids_lost"] = int((j["_merge"] == "left_only").sum())
    both = j[j["_merge"] == "both"]
    out["content_changed"] = int((both["c0"].fillna("\0") != both["c1"].fillna("\0")).sum())

    # vectors valid
    m, nulls = vectors(cur["vec_e384"])
    out["vec_null"] = int(nulls.sum())
    out["vec_nonfinite"] = int((~np.isfinite(m).all(1)).sum())
    norms = np.linalg.norm(m, axis=1)
    out["vec_zero"] = int((norms == 0).sum())
    out["vec_not_unit"] = int((np.abs(norms - 1) > 1e-3).sum())

    # references: supersedes targets exist; chains acyclic
    idset = pd.Index(ids.to_pandas())
    sup = cur["supersedes"].to_pandas()
    has = sup.notna()
    out["dangling"] = int((~sup[has].isin(idset)).sum())
    nxt = dict(zip(ids.to_pandas()[has], sup[has]))
    cycles = 0
    seen: set[str] = set()
    for start in nxt:
        if start in seen:
            continue
        path = set()
        x = start
        while x in nxt and x not in seen:
            if x in path:
                cycles += 1
                break
            path.add(x)
            x = nxt[x]
        seen |= path
    out["cycles"] = cycles

    # lifecycle
    status = cur["status"].to_pandas()
    active = set(ids.to_pandas()[status == "active"])
    pairs = [(o, n) for n, o in nxt.items()]
    out["active_superseded"] = sum(1 for o, n in pairs if o in active and n in active)
    ca, ua = cur["created_at"].to_pandas(), cur["updated_at"].to_pandas()
    out["updated_before_created"] = int(((ua < ca) & ua.notna() & ca.notna()).sum())

    # drift against the previous version, on 500-row samples as memlane does
    rng = np.random.default_rng(7)
    pick = np.sort(rng.choice(prev.count_rows(), 500, replace=False))
    x, _ = vectors(prev.take(pick, columns=["vec_e384"])["vec_e384"])
    y = m[rng.choice(len(m), 500, replace=False)]
    mu0, mu1 = x.mean(0), y.mean(0)
    out["mean_cos"] = float(mu0 @ mu1 / (np.linalg.norm(mu0) * np.linalg.norm(mu1)))
    nx, ny = np.linalg.norm(x, axis=1), np.linalg.norm(y, axis=1)
    out["norms"] = [float(nx.mean()), float(nx.std()), float(ny.mean()), float(ny.std())]
    out["mmd2"], out["p"] = mmd2(x, y, 199, rng)

    secs = time.perf_counter() - t0
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"secs": secs, "rss_kib": rss, "found": out}))


if __name__ == "__main__":
    main(sys.argv[1])
