"""Moving agent memory between stores: LanceDB, Chroma (its real local persistent
client) and JSONL into versioned memlane stores and back, read by independent readers."""

from __future__ import annotations

import json
from pathlib import Path

import chromadb
import lance
import lancedb
import numpy as np
import pyarrow as pa

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
    col = client.create_collection("agent_memory", embedding_function=None)
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
    out = client.create_collection("restored", embedding_function=None)
    assert memlane.to_chroma(store, out) == 60
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
