"""Moving agent memory between stores: LanceDB, Chroma (its real local persistent
client) and JSONL into versioned memlane stores and back, read by independent readers."""

from __future__ import annotations

import json
import warnings
from datetime import datetime, timedelta, timezone
from pathlib import Path

import chromadb
import lance
import lancedb
from lancedb.index import IvfPq
import numpy as np
import pyarrow as pa
import pytest

import memlane
from conftest import CORPUS, HashingModel, corpus


def test_lancedb_table_in_and_out(tmp_path: Path) -> None:
    m = HashingModel(48)
    recs = corpus(80)
    db = lancedb.connect(tmp_path / "ldb")
    tbl = db.create_table(
        "memories",
        data=pa.table(
            {
                "id": [r["id"] for r in recs],
                "text": [r["content"] for r in recs],
                "topic": [r["source"] for r in recs],
                "vector": pa.FixedSizeListArray.from_arrays(
                    pa.array(m([r["content"] for r in recs]).ravel()), 48
                ),
            }
        ),
    )
    space = memlane.Space("hash48", 48, provider="test", model="hash48", normalized=True)
    # lancedb finds tables as `<name>.lance` directories
    store = memlane.import_lancedb(tbl, tmp_path / "mem.lance", space)
    assert len(store) == 80
    t = store.to_arrow(["id", "content", "topic", "vec_hash48"])
    src = tbl.to_arrow()
    assert t.column("id").to_pylist() == src.column("id").to_pylist()
    assert t.column("content").to_pylist() == src.column("text").to_pylist()
    assert t.column("topic").to_pylist() == src.column("topic").to_pylist()
    np.testing.assert_array_equal(
        np.stack(t.column("vec_hash48").to_numpy(zero_copy_only=False)),
        np.stack(src.column("vector").to_numpy(zero_copy_only=False)),
    )
    # and lancedb opens the memlane store as an ordinary Lance table
    back = lancedb.connect(tmp_path).open_table("mem")
    assert back.count_rows() == 80
    hits = back.search(m(["parse command line options"])[0], vector_column_name="vec_hash48").limit(3).to_list()
    mine = store.search(m(["parse command line options"])[0], k=3)
    assert [h["id"] for h in hits] == [h.id for h in mine]


def test_chroma_round_trip(tmp_path: Path) -> None:
    m = HashingModel(32)
    recs = corpus(60)
    client = chromadb.PersistentClient(path=str(tmp_path / "chroma"))
    col = client.create_collection("agent_memory", embedding_function=None, configuration={"hnsw": {"space": "cosine"}})
    col.add(
        ids=[r["id"] for r in recs],
        documents=[r["content"] for r in recs],
        embeddings=m([r["content"] for r in recs]),
        metadatas=[{"source": r["source"], "kind": r["kind"]} for r in recs],
    )
    store = memlane.import_chroma(col, tmp_path / "mem")
    (space,) = store.spaces
    assert space.dimension == 32 and space.name == "agent_memory"
    t = store.to_arrow()
    assert sorted(t.column("id").to_pylist()) == sorted(r["id"] for r in recs)
    by_id = {r["id"]: r for r in recs}
    for row in t.select(["id", "content", "source"]).to_pylist():
        assert row["content"] == by_id[row["id"]]["content"]
        assert row["source"] == by_id[row["id"]]["source"]
    # and back into a fresh Chroma collection
    out = client.create_collection("restored", embedding_function=None, configuration={"hnsw": {"space": "cosine"}})
    assert memlane.to_chroma(store, out).rows == 60
    got = out.get(ids=[recs[0]["id"]], include=["embeddings", "documents", "metadatas"])
    assert got["documents"] == [recs[0]["content"]]
    np.testing.assert_allclose(got["embeddings"][0], m([recs[0]["content"]])[0], atol=1e-6)
    assert got["metadatas"][0]["source"] == recs[0]["source"]


def test_jsonl_in_and_out(tmp_path: Path) -> None:
    m = HashingModel(40)
    space = memlane.Space("h40", 40, provider="test", model="hash40", normalized=True)
    store = memlane.import_jsonl(CORPUS, tmp_path / "mem", [space], embedders={"h40": m})
    n = len(corpus())
    assert len(store) == n
    out = tmp_path / "out.jsonl"
    assert memlane.export_jsonl(store, out) == n
    rows = [json.loads(x) for x in out.read_text().splitlines()]
    assert {r["id"] for r in rows} == {r["id"] for r in corpus()}
    assert all(len(r["vec_h40"]) == 40 for r in rows)
    # pylance sees the same ids
    assert sorted(lance.dataset(str(tmp_path / "mem")).to_table(columns=["id"]).column("id").to_pylist()) == sorted(
        r["id"] for r in rows
    )


def _unnormalised(n: int, dim: int, seed: int) -> np.ndarray:
    """Vectors whose lengths vary (0.2 to 5): l2, cosine and dot rank them differently."""
    rng = np.random.default_rng(seed)
    v = rng.normal(size=(n, dim)).astype(np.float32)
    return v * rng.uniform(0.2, 5.0, size=(n, 1)).astype(np.float32)


def _distance(metric: str, vecs: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Exact distances of every row to ``q`` in ``metric`` (smaller is closer)."""
    v, q = vecs.astype(np.float64), q.astype(np.float64)
    if metric == "l2":
        return ((v - q) ** 2).sum(axis=1)
    if metric == "dot":
        return -(v @ q)
    return 1 - (v @ q) / (np.linalg.norm(v, axis=1) * np.linalg.norm(q))


def test_chroma_metric_carries_over_and_search_ranks_the_same(tmp_path: Path) -> None:
    recs = corpus(200)
    vecs = _unnormalised(len(recs), 24, 1)
    queries = _unnormalised(20, 24, 2)
    client = chromadb.PersistentClient(path=str(tmp_path / "chroma"))
    for kw, metric in [({}, "l2"), ({"configuration": {"hnsw": {"space": "ip"}}}, "dot"), ({"metadata": {"hnsw:space": "cosine"}}, "cosine")]:
        col = client.create_collection(f"mem_{metric}", embedding_function=None, **kw)
        col.add(ids=[r["id"] for r in recs], embeddings=vecs, documents=[r["content"] for r in recs])
        store = memlane.import_chroma(col, tmp_path / f"mem_{metric}")
        assert store.spaces[0].metric == metric
        got = col.query(query_embeddings=queries, n_results=10)
        ids = np.array([r["id"] for r in recs])
        overlap = []
        for q, chroma in zip(queries, got["ids"]):
            mine = [h.id for h in store.search(q, k=10, exact=True)]
            # memlane ranks exactly as the metric does ...
            assert mine == list(ids[np.argsort(_distance(metric, vecs, q), kind="stable")[:10]]), metric
            overlap.append(len(set(mine) & set(chroma)) / 10)
        # ... and as Chroma's own (approximate, HNSW) search does, but for its misses
        # (its multithreaded graph build is not deterministic; ip is not a metric space)
        assert np.mean(overlap) >= 0.95 and min(overlap) >= 0.8, (metric, overlap)
        # a space that says otherwise is refused, naming both metrics
        other = "cosine" if metric != "cosine" else "l2"
        with pytest.raises(memlane.InvalidInputError, match=f"searches by {metric}.*says {other}"):
            memlane.import_chroma(col, tmp_path / f"x_{metric}", memlane.Space("s", 24, metric=other))


def test_chroma_mixed_metadata_types_are_named_or_coerced(tmp_path: Path) -> None:
    client = chromadb.PersistentClient(path=str(tmp_path / "chroma"))
    col = client.create_collection("mixed", embedding_function=None)
    col.add(
        ids=["a", "b", "c", "d"],
        embeddings=_unnormalised(4, 8, 3),
        documents=["one", "two", "three", "four"],
        metadatas=[{"chapter": 1, "score": 1}, {"chapter": "iv", "score": 2.5}, {"chapter": 3}, {"tags": ["x", "y"]}],
    )
    with pytest.raises(memlane.InvalidInputError, match=r"metadata key `chapter`.*int \(record `a`: 1\).*str \(record `b`: 'iv'\).*coerce=True"):
        memlane.import_chroma(col, tmp_path / "m1")
    store = memlane.import_chroma(col, tmp_path / "m2", coerce=True)
    rows = {r["id"]: r for r in store.to_arrow(["id", "chapter", "score", "tags"]).to_pylist()}
    assert [rows[i]["chapter"] for i in "abcd"] == ["1", "iv", "3", None]
    assert [rows[i]["score"] for i in "abc"] == [1.0, 2.5, None]  # ints and floats widen to float
    assert rows["d"]["tags"] == ["x", "y"]


def test_to_chroma_upserts_every_field_it_can_hold(tmp_path: Path) -> None:
    m = HashingModel(16)
    recs = corpus(30)
    space = memlane.Space("h16", 16, provider="test", model="hash16", normalized=True)
    when = [datetime(2026, 1, 1, tzinfo=timezone.utc) + timedelta(hours=i) for i in range(len(recs))]
    data = pa.table(
        {
            "id": [r["id"] for r in recs],
            "content": [r["content"] for r in recs],
            "topic": [r["source"] for r in recs],
            "created_at": pa.array(when, pa.timestamp("us", tz="UTC")),
            "relationships": [[{"target": f"r{i + 1}", "relation": "follows", "weight": 0.5}] for i in range(len(recs))],
            "supersedes": [f"old{i}" for i in range(len(recs))],
        }
    )
    store = memlane.create(tmp_path / "mem", [space], data=data, embedders={"h16": m})
    client = chromadb.PersistentClient(path=str(tmp_path / "chroma"))
    out = client.create_collection("out", embedding_function=None, configuration={"hnsw": {"space": "cosine"}})
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nothing of this store is dropped
        rep = memlane.to_chroma(store, out)
    assert rep.rows == 30 and rep.dropped == {}
    assert rep.converted["created_at"] == "ISO 8601 text" and rep.converted["relationships"] == "JSON text"
    got = out.get(ids=[recs[3]["id"]], include=["metadatas", "documents"])
    meta = got["metadatas"][0]
    assert meta["topic"] == recs[3]["source"] and meta["supersedes"] == "old3"
    assert meta["created_at"] == "2026-01-01T03:00:00+00:00"
    assert json.loads(meta["relationships"]) == [{"target": "r4", "relation": "follows", "weight": 0.5}]
    assert not any(k.startswith("vec_") for k in meta)
    # a second export updates what changed (upsert), it does not fail or duplicate
    store.upsert({"id": [recs[3]["id"]], "content": ["rewritten"], "topic": ["t"]}, embedders={"h16": m})
    assert memlane.to_chroma(store, out).rows == 30
    assert out.count() == 30
    assert out.get(ids=[recs[3]["id"]], include=["documents"])["documents"] == ["rewritten"]
    # a collection searching by another metric is refused with the fix
    l2 = client.create_collection("by_l2", embedding_function=None)
    with pytest.raises(memlane.InvalidInputError, match="searches by l2.*'space': 'cosine'"):
        memlane.to_chroma(store, l2)


def test_lancedb_columns_and_index_metric(tmp_path: Path) -> None:
    recs = corpus(300)
    vecs = _unnormalised(len(recs), 16, 4)
    db = lancedb.connect(tmp_path / "ldb")
    tbl = db.create_table(
        "notes",
        data=pa.table(
            {
                "id": [r["id"] for r in recs],
                "body": [r["content"] for r in recs],
                "vector": pa.FixedSizeListArray.from_arrays(pa.array(vecs.ravel()), 16),
            }
        ),
    )
    space = memlane.Space("s16", 16, provider="test", model="m", metric="dot")
    with pytest.raises(memlane.InvalidInputError, match=r"no text column `text`.*\['id', 'body', 'vector'\].*text_column="):
        memlane.import_lancedb(tbl, tmp_path / "a", space)
    store = memlane.import_lancedb(tbl, tmp_path / "b", space, text_column="body")
    assert store.to_arrow(["content"]).column("content").to_pylist()[:3] == [r["content"] for r in recs[:3]]
    bare = memlane.import_lancedb(tbl, tmp_path / "c", space, text_column=None)
    assert len(bare) == 300
    tbl.create_index("vector", config=IvfPq(distance_type="dot", num_partitions=2, num_sub_vectors=2))
    with pytest.raises(memlane.InvalidInputError, match="index on `vector` searches by dot, but space `c16` says cosine"):
        memlane.import_lancedb(tbl, tmp_path / "d", memlane.Space("c16", 16), text_column="body")
    assert len(memlane.import_lancedb(tbl, tmp_path / "e", space, text_column="body")) == 300


def test_a_lancedb_index_on_a_memlane_store_is_verified_and_used(tmp_path: Path) -> None:
    recs = corpus(600)
    vecs = _unnormalised(len(recs), 16, 5)
    space = memlane.Space("s16", 16, provider="test", model="m", metric="l2")
    data = pa.table({"id": [r["id"] for r in recs], "content": [r["content"] for r in recs], "vec_s16": pa.FixedSizeListArray.from_arrays(pa.array(vecs.ravel()), 16)})
    store = memlane.create(tmp_path / "mem.lance", [space], data=data)
    tbl = lancedb.connect(tmp_path).open_table("mem")
    tbl.create_index("vec_s16", config=IvfPq(distance_type="l2", num_partitions=4, num_sub_vectors=4))
    store.refresh()
    v = store.verify()
    assert v.ok, str(v)
    assert "index commit(s) by another writer" in str(v)
    q = _unnormalised(1, 16, 6)[0]
    hits = store.search(q, k=5)
    assert hits.index == "ivf_pq"
    exact = store.search(q, k=5, exact=True)
    assert len({h.id for h in hits} & {h.id for h in exact}) >= 4
    assert store.search(q, k=5, exact=True).index is None
    # memlane keeps writing after it, and verify stays green
    store.add({"id": ["late"], "content": ["late"], "vec_s16": [list(map(float, q))]})
    assert store.verify().ok
