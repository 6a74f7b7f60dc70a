"""Checked by `mypy --strict` (test_notebook_and_stubs.py), never run: the documented
Python surface as a user's typed code uses it, so the stubs must carry it."""

from __future__ import annotations

from typing import List, Optional

import numpy as np

import memlane


def embed(texts: List[str]) -> np.ndarray:
    return np.zeros((len(texts), 8), dtype=np.float32)


def use(path: str) -> None:
    store = memlane.open(path)
    store.use_embedder("h8", embed)
    hits = store.search("what did the user ask", k=3)
    ids: List[str] = [h.id for h in hits]
    index: Optional[str] = hits.index
    store.search(np.ones(8, dtype=np.float32), k=1, filter="kind = 'fact'")
    try:
        store.add({"id": ["x"], "content": ["y"]})
    except memlane.IncompatibleSpaceError as e:
        record: Optional[str] = e.record_id
        space: Optional[str] = e.space
        expected: Optional[int] = e.expected
        print(record, space, expected)
    except memlane.EmbedderError as e:
        batch: Optional[int] = e.batch
        print(e.embedder, batch, e.record_id)
    try:
        store.apply("migrations/", embedders={"h8": embed})
    except memlane.InvariantViolation as e:
        print(e.file, e.step, e.report)
    except memlane.GateBlocked as e:
        print(e.file, e.check)
    except memlane.ModelDrift as e:
        cos: Optional[float] = e.cosine
        print(e.space, e.embedder, cos, e.canary)
    except memlane.LockHeld as e:
        pid: Optional[int] = e.pid
        print(e.holder, e.host, pid)
    except memlane.ChecksumMismatch as e:
        print(e.file)
    except memlane.NotFoundError as e:
        print(e.uri)
    version: int = store.create_index("h8", kind="ivf_pq", partitions=4, min_recall=0.9)
    print(version)
    status = store.status()
    print(repr(status), status.data["version"], ids, index)
    report = store.promote("next", keep=True)
    print(report.migrations, report.version)
    exported = memlane.to_chroma(store, object())
    print(exported.rows, exported.converted, exported.dropped)
