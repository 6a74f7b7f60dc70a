"""The session a LanceDB user expects, on a memlane store: text search through a
remembered embedder, refined with where/select/limit and read as dicts, pandas, polars
or Arrow, with each hit's fields; the same hits lancedb itself returns on the same
Lance dataset; count_rows/head/schema/to_pandas/to_polars without internal columns;
update (a content change re-embeds) and delete."""

from __future__ import annotations

from pathlib import Path

import lancedb
import numpy as np
import pandas as pd
import polars as pl
import pyarrow as pa
import pytest

import memlane
from conftest import HashingModel, corpus


def store_with_model(tmp_path: Path) -> memlane.Store:
    m = HashingModel(32)
    sp = memlane.Space("h32", 32, provider="test", model="hash32", normalized=True)
    rows = corpus()
    s = memlane.create(tmp_path / "mem.lance", [sp], data=rows, embedders={"h32": m})
    return s.use_embedder("h32", m)


def test_a_lancedb_style_session(tmp_path: Path) -> None:
    s = store_with_model(tmp_path)
    kinds = set(s.to_arrow(["kind"]).column("kind").to_pylist())
    kind = sorted(k for k in kinds if k)[0]
    q = s.search("how do I parse command line options").where(f"kind = '{kind}'").select(["content", "kind"]).limit(4)
    rows = q.to_list()
    assert 0 < len(rows) <= 4
    assert all(set(r) == {"id", "content", "kind", "_distance"} for r in rows)
    assert all(r["kind"] == kind for r in rows)
    d = [r["_distance"] for r in rows]
    assert d == sorted(d)
    df = q.to_pandas()
    assert isinstance(df, pd.DataFrame) and list(df.columns) == ["id", "content", "kind", "_distance"]
    assert isinstance(q.to_polars(), pl.DataFrame) and q.to_arrow().num_rows == len(rows)
    # still the list of hits it always was
    assert [h.id for h in q] == [r["id"] for r in rows] and q.index is None
    # default fields: every field but vectors, never internal columns
    full = s.search("parse JSON text", k=2).to_list()[0]
    assert "vec_h32" not in full and not any(k.endswith("__src") for k in full) and "created_at" in full

    # lancedb on the same dataset returns the same records
    tbl = lancedb.connect(tmp_path).open_table("mem")
    vec = HashingModel(32)(["how do I parse command line options"])[0]
    theirs = tbl.search(vec, vector_column_name="vec_h32").distance_type("cosine").where(f"kind = '{kind}'", prefilter=True).limit(4).to_list()
    assert [r["id"] for r in theirs] == [r["id"] for r in rows]
    np.testing.assert_allclose([r["_distance"] for r in theirs], d, atol=1e-5)


def test_table_methods_without_internal_columns(tmp_path: Path) -> None:
    s = store_with_model(tmp_path)
    n = len(corpus())
    assert s.count_rows() == n == len(s)
    kind = s.to_arrow(["kind"]).column("kind").to_pylist()[0]
    assert s.count_rows(f"kind = '{kind}'") == s.to_arrow(["kind"]).column("kind").to_pylist().count(kind)
    assert s.head(3).num_rows == 3
    names = s.schema.names
    assert "vec_h32" in names and not [c for c in names if c.endswith("__src")]
    df = s.to_pandas()
    assert len(df) == n and list(df.columns) == names
    assert s.to_polars(["id", "content"]).shape == (n, 2)

    first = corpus()[0]["id"]
    assert s.update(f"id = '{first}'", {"kind": "episodic", "status": "expired"}) == 1
    row = s.to_arrow(["kind", "status"], f"id = '{first}'").to_pylist()[0]
    assert row == {"kind": "episodic", "status": "expired"}
    # a content change re-embeds the record with the space's embedder
    before = s.vectors("h32", f"id = '{first}'")[1][0]
    s.update(f"id = '{first}'", {"content": "an entirely new text about ships"})
    after = s.vectors("h32", f"id = '{first}'")[1][0]
    np.testing.assert_allclose(after, HashingModel(32)(["an entirely new text about ships"])[0], atol=1e-6)
    assert not np.allclose(before, after)
    assert s.search("an entirely new text about ships", k=1)[0].id == first
    assert s.verify().ok
    assert s.delete(f"id = '{first}'") == 1 and s.count_rows() == n - 1
    assert s.update("id = 'nobody'", {"kind": "x"}) == 0
    t = pa.table({"id": ["z"], "content": ["a new record"]})
    s.add(t)
    assert s.count_rows() == n


def test_create_index_from_python_proves_recall_and_search_uses_it(tmp_path: Path) -> None:
    rng = np.random.default_rng(7)
    v = rng.normal(size=(2000, 32)).astype(np.float32)
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    sp = memlane.Space("r32", 32, provider="bench", model="random", normalized=True)
    s = memlane.create(
        tmp_path / "mem.lance",
        [sp],
        data=pa.table({"id": [f"r{i}" for i in range(2000)], "content": [f"t{i}" for i in range(2000)], "vec_r32": pa.FixedSizeListArray.from_arrays(pa.array(v.ravel()), 32)}),
    )
    before = s.version
    # one probe of 16 partitions, no re-ranking, and a floor of 1.0: refused, nothing lands
    with pytest.raises(memlane.StateError, match="was not kept.*recall"):
        s.create_index("r32", kind="ivf_pq", partitions=16, sub_vectors=4, nprobes=1, refine_factor=0, min_recall=1.0)
    assert s.refresh().version == before and s.search(v[0], k=3).index is None
    version = s.create_index("r32", kind="ivf_pq", partitions=4, sub_vectors=4, min_recall=0.5)
    assert version == s.refresh().version > before
    hits = s.search(v[0], k=3)
    assert hits.index == "ivf_pq" and hits[0].id == "r0"
    assert s.verify().ok
    last = s.history().versions[-1]["entry"]
    assert last["action"] == "index" and "ivf_pq index on space `r32`" in last["reason"]
    names = [ix.name for ix in lancedb.connect(tmp_path).open_table("mem").list_indices()]
    assert names == ["vec_r32_idx"]


KILLED_INDEX = """
import sys
import memlane
memlane.open(sys.argv[1]).create_index("r32", kind="ivf_pq", partitions=4, sub_vectors=4, min_recall=0.5)
"""


def test_a_killed_create_index_leaves_the_store_as_it_was(tmp_path: Path) -> None:
    """SIGKILL while the index is built (its files appear under `_indices/`): the store
    verifies at its last version, searches exactly, and the index is built by a rerun."""
    import signal
    import subprocess
    import sys
    import time

    rng = np.random.default_rng(8)
    v = rng.normal(size=(8000, 32)).astype(np.float32)
    sp = memlane.Space("r32", 32, provider="bench", model="random")
    s = memlane.create(
        tmp_path / "mem.lance",
        [sp],
        data=pa.table({"id": [f"r{i}" for i in range(8000)], "content": [f"t{i}" for i in range(8000)], "vec_r32": pa.FixedSizeListArray.from_arrays(pa.array(v.ravel()), 32)}),
    )
    before = s.version
    child = tmp_path / "child.py"
    child.write_text(KILLED_INDEX)
    p = subprocess.Popen([sys.executable, str(child), s.uri], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    indices = tmp_path / "mem.lance" / "_indices"
    for _ in range(60000):  # until the build has written files (bounded)
        if p.poll() is not None or (indices.exists() and any(indices.rglob("*"))):
            break
        time.sleep(0.005)
    killed = p.poll() is None
    p.send_signal(signal.SIGKILL)
    p.wait()
    s.refresh()
    assert s.verify().ok
    if killed:  # the kill landed before the commit: nothing of it is the store's
        assert s.version == before and s.search(v[1], k=1).index is None
    s.create_index("r32", kind="ivf_pq", partitions=4, sub_vectors=4, min_recall=0.5)
    assert s.search(v[1], k=1).index == "ivf_pq" and s.verify().ok
