"""Interop: stores written by the memlane CLI, read back by independent readers.

pylance 14.0.2 (the same Lance release as the Rust crate) and lancedb open a store that
`memlane init` + `memlane apply` wrote, and must see exactly what `memlane export`,
`memlane status` and `memlane search` report. The CLI's JSON output shapes are checked too.

MEMLANE_BIN names the memlane binary (`make test-python` sets it).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections import Counter
from pathlib import Path
from typing import Optional, Tuple

import lance
import lancedb
import numpy as np
import pyarrow as pa
import pytest

ROOT = Path(__file__).resolve().parents[2]
CORPUS = ROOT / "migrations-examples" / "data" / "corpus.jsonl"
EX01 = ROOT / "migrations-examples" / "01-agent-memory-bootstrap"
EX02 = ROOT / "migrations-examples" / "02-metadata-evolution"
SPACE = "hash384"
VEC = "vec_hash384"
DIM = 384
# The space's embedder in 01 is `hash384`: the CLI's hashing embedder, 384 dims, seed 0.
QUERY_EMBEDDER = "hash:384"

EXIT_BLOCKED = 3


def memlane_bin() -> str:
    default = Path.home() / ".cache" / "memlane" / "target" / "debug" / "memlane"
    path = os.environ.get("MEMLANE_BIN") or str(default)
    if not (os.path.isfile(path) and os.access(path, os.X_OK)):
        pytest.fail(f"memlane binary not found at {path}: run `make build` or set MEMLANE_BIN")
    return path


def run(*args: object, ok: bool = True) -> subprocess.CompletedProcess[str]:
    """Run memlane with args; fail the test (showing its output) if it does not exit 0."""
    cmd = [memlane_bin(), *map(str, args)]
    p = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, stdin=subprocess.DEVNULL, timeout=300)
    if ok and p.returncode != 0:
        pytest.fail(f"{' '.join(cmd)} exited {p.returncode}\nstdout:\n{p.stdout}\nstderr:\n{p.stderr}")
    return p


def run_json(*args: object):
    return json.loads(run("--json", *args).stdout)


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> dict:
    """A store from the corpus with example 01 applied, and its JSONL export.

    The directory is named `mem.lance` so that lancedb, which lists `*.lance` directories
    as tables, can open it as table `mem` of the database at its parent.
    """
    base = tmp_path_factory.mktemp("interop")
    path = base / "mem.lance"
    run("init", path, "--from", CORPUS)
    run("apply", path, EX01, "--yes")
    out = base / "out.jsonl"
    run("export", path, "-o", out)
    exported = [json.loads(line) for line in out.read_text().splitlines() if line.strip()]
    return {"path": path, "base": base, "exported": exported, "by_id": {r["id"]: r for r in exported}}


@pytest.fixture(scope="module")
def ds(store):
    return lance.dataset(str(store["path"]))


def test_export_matches_corpus(store):
    corpus = [json.loads(line) for line in CORPUS.read_text().splitlines() if line.strip()]
    assert len(store["exported"]) == len(corpus)
    assert {r["id"]: r["content"] for r in store["exported"]} == {r["id"]: r["content"] for r in corpus}
    assert all(len(r[VEC]) == DIM for r in store["exported"])


def test_pylance_reads_same_records(store, ds):
    exported = store["exported"]
    assert ds.count_rows() == len(exported)
    table = ds.to_table(columns=["id", "content"])
    ids = table.column("id").to_pylist()
    assert len(ids) == len(set(ids)), "duplicate ids in the Lance dataset"
    assert set(ids) == set(store["by_id"])
    contents = dict(zip(ids, table.column("content").to_pylist()))
    for id_, rec in store["by_id"].items():
        assert contents[id_] == rec["content"], id_


def test_vector_column_type_and_values(store, ds):
    field = ds.schema.field(VEC)
    assert pa.types.is_fixed_size_list(field.type), field.type
    assert field.type.list_size == DIM
    assert field.type.value_type == pa.float32()

    table = ds.to_table(columns=["id", VEC])
    ids = table.column("id").to_pylist()
    col = table.column(VEC).combine_chunks()
    assert col.null_count == 0
    ours = col.values.to_numpy(zero_copy_only=False).reshape(len(ids), DIM)
    theirs = np.array([store["by_id"][i][VEC] for i in ids], dtype=np.float32)
    np.testing.assert_allclose(ours, theirs, rtol=1e-6, atol=1e-7)
    # the space is declared normalised: unit length
    np.testing.assert_allclose(np.linalg.norm(ours, axis=1), 1.0, atol=1e-5)


def test_version_matches_status(store, ds):
    status = run_json("status", store["path"])
    assert ds.version == status["version"]
    assert ds.latest_version == status["version"]
    assert ds.count_rows() == status["rows"]
    assert len(ds.versions()) == status["version"]


def _without_report_version(entry):
    e = dict(entry)
    if e.get("report"):
        e["report"] = {k: v for k, v in e["report"].items() if k != "version"}
    return e


def test_transaction_properties_readable_by_pylance(store, ds):
    if not hasattr(ds, "read_transaction"):
        pytest.skip("this pylance has no Dataset.read_transaction: transaction properties not checked")
    history = run_json("history", store["path"])
    status = run_json("status", store["path"])
    for item in history:
        tx = ds.read_transaction(item["version"])
        assert tx is not None, f"no transaction file for version {item['version']}"
        props = tx.transaction_properties or {}
        assert "memlane.entry" in props and "memlane.state" in props, (item["version"], sorted(props))
        entry = json.loads(props["memlane.entry"])
        # `history` fills in the version a step report was committed at (unknown before the commit)
        assert _without_report_version(entry) == _without_report_version(item["entry"]), (
            f"version {item['version']}: pylance's entry differs from `history --json`"
        )
        json.loads(props["memlane.state"])  # valid JSON at every version
    # the latest version's state is what `status` reports
    state = json.loads(ds.read_transaction(ds.version).transaction_properties["memlane.state"])
    assert state["active_space"] == status["active_space"] == SPACE
    assert [a["file"] for a in state["applied"]] == [a["file"] for a in status["applied"]] == ["0001_spaces.toml"]
    assert [a["checksum"] for a in state["applied"]] == [a["checksum"] for a in status["applied"]]
    assert [s["name"] for s in state["spaces"]] == [s["name"] for s in status["spaces"]]
    assert [json.loads(ds.read_transaction(v).transaction_properties["memlane.entry"])["action"] for v in (1, 2, 3, 4)] == [
        "create",
        "step",
        "checkpoint",
        "migration",
    ]


def test_tags_visible_to_pylance(store, ds):
    tags = ds.tags.list()
    assert {name: t["version"] for name, t in tags.items()} == {"migration-0001-spaces": ds.version}


def _unique_content_record(store) -> dict:
    counts = Counter(r["content"] for r in store["exported"])
    vec_counts = Counter(tuple(r[VEC]) for r in store["exported"])
    for r in store["exported"]:
        if counts[r["content"]] == 1 and vec_counts[tuple(r[VEC])] == 1 and len(r["content"]) > 40:
            return r
    pytest.fail("no record with unique content and vector in the corpus")


def _cosine_distances(store, q: np.ndarray) -> dict[str, float]:
    ids = [r["id"] for r in store["exported"]]
    m = np.array([r[VEC] for r in store["exported"]], dtype=np.float64)
    q = q.astype(np.float64)
    d = 1.0 - (m @ q) / (np.linalg.norm(m, axis=1) * np.linalg.norm(q))
    return dict(zip(ids, d))


def test_lancedb_opens_store_and_search_agrees_with_memlane(store):
    db = lancedb.connect(str(store["base"]))
    table = db.open_table("mem")
    assert table.count_rows() == len(store["exported"])

    rec = _unique_content_record(store)
    q = np.asarray(rec[VEC], dtype=np.float32)
    k = 5
    hits = table.search(q, vector_column_name=VEC).distance_type("cosine").limit(k).to_list()
    assert hits[0]["id"] == rec["id"]
    assert hits[0]["_distance"] == pytest.approx(0.0, abs=1e-5)

    # memlane embeds the record's content with the space's embedder: the same vector
    res = run_json("search", store["path"], rec["content"], "--embedder", QUERY_EMBEDDER, "--space", SPACE, "-k", k)
    assert res["space"] == SPACE
    assert res["coverage"]["rows_with_vector"] == res["coverage"]["rows"] == len(store["exported"])
    ml = res["hits"]
    assert len(ml) == k
    assert ml[0]["id"] == rec["id"]
    assert ml[0]["distance"] == pytest.approx(0.0, abs=1e-5)
    assert ml[0]["content"] == rec["content"]

    # both report cosine distances equal to a brute-force numpy computation
    exact = _cosine_distances(store, q)
    for h in hits:
        assert h["_distance"] == pytest.approx(exact[h["id"]], abs=1e-5), h["id"]
    for h in ml:
        assert h["distance"] == pytest.approx(exact[h["id"]], abs=1e-5), h["id"]
    best = sorted(exact.values())[:k]
    np.testing.assert_allclose(sorted(h["distance"] for h in ml), best, atol=1e-5)
    np.testing.assert_allclose(sorted(h["_distance"] for h in hits), best, atol=1e-5)


def test_status_json_shape(store):
    s = run_json("status", store["path"], EX01)
    for key in ("store", "version", "rows", "spaces", "active_space", "applied", "in_flight", "pending", "lock", "fields"):
        assert key in s, key
    # create, add_space, one backfill checkpoint (a single fragment), the completing commit
    assert isinstance(s["version"], int) and s["version"] == 4
    assert s["rows"] == len(store["exported"])
    assert s["active_space"] == SPACE
    assert s["in_flight"] is None and s["lock"] is None
    assert s["pending"] == 0
    (space,) = s["spaces"]
    assert space == {
        "name": SPACE,
        "column": VEC,
        "dimension": DIM,
        "dtype": "f32",
        "metric": "cosine",
        "normalized": True,
        "provider": "memlane",
        "model": "hash-embed",
        "revision": "1",
        # recorded by the apply that first embedded into the space
        "fingerprint": {"canaries": 8, "tolerance": 0.999},
        # the embedder its reembed named, remembered for later writes and searches
        "embedder": "hash384",
    }
    (applied,) = s["applied"]
    assert applied["id"] == 1 and applied["file"] == "0001_spaces.toml"
    for h in ("checksum", "content_hash"):
        assert len(applied[h]) == 64 and int(applied[h], 16) >= 0
    fields = {f["name"]: f for f in s["fields"]}
    assert fields["id"] == {"name": "id", "type": "string", "nullable": False}
    assert fields[VEC]["type"] == {"vector": DIM}
    assert {"content", "kind", "created_at", "source"} <= set(fields)

    # without a migrations folder, pending is unknown
    assert run_json("status", store["path"])["pending"] is None


def test_history_json_shape(store):
    h = run_json("history", store["path"])
    assert [i["version"] for i in h] == [1, 2, 3, 4]
    for item in h:
        assert {"version", "timestamp", "operation", "entry", "tags"} <= set(item)
        assert isinstance(item["tags"], list)
        assert item["entry"]["tool_version"]
    assert [i["entry"]["action"] for i in h] == ["create", "step", "checkpoint", "migration"]
    assert h[0]["entry"]["rows"] == [0, len(store["exported"])]
    assert h[2]["entry"]["reason"].startswith("backfill pass 1 of `hash384`")
    for item in (h[1], h[3]):
        e = item["entry"]
        assert e["migration"] == 1 and e["file"] == "0001_spaces.toml"
        r = e["report"]
        assert r["rows_before"] == r["rows_after"] == len(store["exported"])
        assert r["invariants"] and all(inv["passed"] for inv in r["invariants"])
        for inv in r["invariants"]:
            assert {"name", "check", "severity", "passed", "total", "failed", "message"} <= set(inv)
    assert [h[i]["entry"]["report"]["op"] for i in (1, 3)] == ["add_space", "reembed"]
    assert h[3]["entry"]["report"]["rows_written"] == len(store["exported"])
    assert h[3]["entry"]["report"]["version"] == 4
    assert h[3]["tags"] == ["migration-0001-spaces"]


def test_verify_json_shape(store):
    v = run_json("verify", store["path"], EX01)
    assert v["version"] == 4
    names = [c["name"] for c in v["checks"]]
    assert {"chain", "folder", "lance", "spaces", "history", "rows", "ids", "vectors", "current"} <= set(names)
    for c in v["checks"]:
        assert set(c) == {"name", "ok", "message"}
        assert c["ok"] is True, c


def test_cli_and_python_give_one_report(store):
    """status, verify and validate come from the library once: the CLI's `--json` and the
    Python report carry the same data, and the Python report's text is the CLI's."""
    import memlane

    st = memlane.open(str(store["path"]))
    pairs = [
        (st.status(), ("status", store["path"])),
        (st.verify(EX01), ("verify", store["path"], EX01)),
        (st.validate(), ("validate", store["path"])),
    ]
    for report, args in pairs:
        cli = run_json(*args)
        assert set(report.data) == set(cli), args[0]
        assert report.data["version"] == cli["version"]
        text = run(*args, ok=False).stdout
        assert str(report).strip() == text.strip(), args[0]
    assert st.verify(EX01).data["ok"] is True and run_json("verify", store["path"], EX01)["ok"] is True
    # export by extension, decided once: `.json` is JSON Lines for both
    out = store["base"] / "py-export.json"
    assert st.export(str(out)) == len(store["exported"])
    first = json.loads(out.read_text().splitlines()[0])
    assert first["id"] in store["by_id"]


def test_edited_applied_migration_is_refused(tmp_path):
    mig = tmp_path / "migrations"
    shutil.copytree(EX02, mig)
    path = tmp_path / "edited"
    run("init", path, "--from", CORPUS)
    run("apply", path, mig, "--yes")
    f = mig / "0001_topic.toml"
    text = f.read_text()
    assert 'default = "general"' in text
    f.write_text(text.replace('default = "general"', 'default = "misc"'))

    p = run("plan", path, mig, ok=False)
    assert p.returncode == EXIT_BLOCKED, p
    assert "0001_topic.toml" in p.stderr

    p = run("apply", path, mig, "--yes", ok=False)
    assert p.returncode == EXIT_BLOCKED, p

    p = run("--json", "verify", path, mig, ok=False)
    assert p.returncode == EXIT_BLOCKED, p
    checks = {c["name"]: c for c in json.loads(p.stdout)["checks"]}
    assert checks["folder"]["ok"] is False
    assert "0001_topic.toml" in checks["folder"]["message"]
    assert all(c["ok"] for n, c in checks.items() if n != "folder")


def store_with_old_space(tmp_path: Path, rows: int, rows_per_fragment: int, throttle: Optional[int] = None) -> Tuple[Path, Path]:
    """A store of ``rows`` corpus records (ids and texts made unique) with example 04's
    first migration applied, and a folder holding its re-embed into new384 (throttled
    to ``throttle`` rows a second when given) as pending: (store, folder)."""
    ex04 = ROOT / "migrations-examples" / "04-reembed-new-model"
    base = [json.loads(x) for x in (ROOT / "migrations-examples/data/corpus.jsonl").read_text().splitlines()]
    data = tmp_path / "data.jsonl"
    data.write_text(
        "".join(
            json.dumps({**base[i % len(base)], "id": f"r{i}", "content": f"{base[i % len(base)]['content']} #{i}"}) + "\n"
            for i in range(rows)
        )
    )
    store = tmp_path / "store"
    run("init", store, "--from", data, "--rows-per-fragment", str(rows_per_fragment))
    folder = tmp_path / "migs"
    folder.mkdir()
    (folder / "0001_old.toml").write_text((ex04 / "0001_old.toml").read_text())
    run("apply", store, folder, "--yes")
    reembed = (ex04 / "0002_new_model.toml").read_text()
    if throttle is not None:
        reembed = reembed.replace('embedder = "hash384v2"', f'embedder = "hash384v2"\nthrottle = {throttle}')
    (folder / "0002_new_model.toml").write_text(reembed)
    return store, folder

