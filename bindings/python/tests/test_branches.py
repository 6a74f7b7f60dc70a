"""Branches and rehearsals from Python: a real model upgrade (wordllama, 256-d) rehearsed
on a branch of a store, with the store's version and every file byte-identical after it;
the branch API (branch, branches, delete_branch, promote: the rehearsed vectors become
the store's, read back through pylance, with no model call) and the notebook views."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any, Dict

import numpy as np
import pytest

import memlane
from conftest import corpus, write_migration

wordllama = pytest.importorskip("wordllama")

OLD = """
description = "Embed with the hashing model"

[[steps]]
op = "add_space"
space = "old"
dimension = 64

[[steps]]
op = "reembed"
space = "old"
embedder = "old"
"""

UPGRADE = """
description = "Upgrade to wordllama"

[[steps]]
op = "add_space"
space = "wl"
provider = "dleemiller"
model = "wordllama-l2-supercat"
dimension = 256
metric = "cosine"
normalized = true

[[steps]]
op = "reembed"
space = "wl"
embedder = "wl"
"""


def files(root: Path) -> Dict[str, str]:
    return {str(p.relative_to(root)): hashlib.blake2b(p.read_bytes()).hexdigest() for p in root.rglob("*") if p.is_file()}


def test_rehearse_a_real_model_upgrade_on_a_branch(tmp_path: Path, model: Any) -> None:
    wl = wordllama.WordLlama.load(cache_dir=Path(wordllama.__file__).parent, disable_download=True)

    def embed(texts: list) -> np.ndarray:
        v = np.asarray(wl.embed(texts), dtype=np.float64)
        return (v / np.linalg.norm(v, axis=1, keepdims=True)).astype(np.float32)

    old = model(64)
    store = memlane.create(tmp_path / "mem", data=corpus())
    folder = tmp_path / "migrations"
    write_migration(folder, "0001_old.toml", OLD)
    store.apply(folder, embedders={"old": old}, progress=False)
    write_migration(folder, "0002_wl.toml", UPGRADE)
    before, version = files(Path(store.uri)), store.version

    r = store.rehearse(folder, embedders={"old": old, "wl": embed}, keep=True, name="upgrade")
    assert r.ok and r.outcome == "pass", str(r)
    rep = r.report
    assert rep is not None and rep.steps[-1]["op"] == "reembed" and rep.steps[-1]["rows_written"] == len(corpus())
    assert r.data["report"]["context"]["context_kept"] is not None
    assert "memlane rehearsal" in r._repr_html_() and "PASS" in r._repr_html_()
    assert [b["name"] for b in store.branches()] == ["upgrade"]

    branch = memlane.open(r.data["branch"])
    assert branch.status().data["active_space"] == "wl"
    assert branch.verify().ok

    sampled = store.rehearse(folder, embedders={"old": old, "wl": embed}, sample=100)
    assert sampled.ok and sampled.data["rows_rehearsed"] == 100
    assert sampled.data["estimated_full_ms"] >= sampled.data["duration_ms"]

    # the store: same version, same files
    store.refresh()
    assert store.version == version and files(Path(store.uri)) == before
    # promoted: the rehearsal's vectors become the store's, no model called again
    p = store.promote("upgrade")
    assert isinstance(p, memlane.PromoteReport) and p.migrations == ["0002_wl.toml"], str(p)
    assert p.data["branch_deleted"] and p.version == store.version and "promote" in p._repr_html_()
    assert store.status().data["active_space"] == "wl" and store.verify().ok
    assert store.plan(folder).data["migrations"] == []
    lance = pytest.importorskip("lance")
    t = lance.dataset(store.uri).to_table(columns=["content", "vec_wl"]).to_pydict()
    got = np.asarray(t["vec_wl"], dtype=np.float32)
    want = embed(t["content"])
    assert float(np.min(np.sum(got * want, axis=1))) > 0.9999
    assert store.branches() == []
    with pytest.raises(memlane.NotFoundError):
        store.delete_branch("upgrade")
    with pytest.raises(memlane.NotFoundError):
        store.promote("nope")

    b = store.branch("manual")
    assert b.uri.endswith(".branches/manual") and len(b) == len(store)
    with pytest.raises(memlane.StoreExistsError):
        store.branch("manual")
    with pytest.raises(memlane.InvalidInputError, match="branch name"):
        store.branch("../escape")
    with pytest.raises(memlane.StateError, match="nothing to promote"):
        store.promote("manual")


def test_diff_two_stores(tmp_path: Path, model: Any) -> None:
    folder = tmp_path / "migrations"
    write_migration(folder, "0001_old.toml", OLD)
    dev = memlane.create(tmp_path / "dev", data=corpus())
    dev.apply(folder, embedders={"old": model(64)}, progress=False)
    prod = memlane.create(tmp_path / "prod", data=corpus())
    prod.apply(folder, embedders={"old": model(64)}, progress=False)
    d = memlane.diff(dev, prod)
    assert d.same and d.verdict == "same" and "SAME" in d._repr_html_()
    # the same space name, identity and migration, another model
    swapped = memlane.create(tmp_path / "swapped", data=corpus())
    swapped.apply(folder, embedders={"old": model(64, seed=5)}, progress=False)
    d = memlane.diff(dev.uri, swapped.uri)
    assert d.verdict == "incompatible", str(d)
    assert d.spaces[0]["paired_cosine"] < 0.5 and "another model" in d.reasons[0]
    # a branch with a migration more is a store that differs
    write_migration(folder, "0002_wl.toml", UPGRADE.replace("wordllama-l2-supercat", "hash").replace("256", "32"))
    r = dev.rehearse(folder, embedders={"old": model(64), "wl": model(32)}, keep=True, name="next")
    assert r.ok, str(r)
    d = memlane.diff(dev, r.data["branch"])
    assert d.verdict == "differ" and any("only on B: 0002_wl.toml" in x for x in d.reasons), d.reasons


def test_bundle_round_trip_opens_in_pylance(tmp_path: Path, model: Any) -> None:
    import lance

    folder = tmp_path / "migrations"
    write_migration(folder, "0001_old.toml", OLD)
    store = memlane.create(tmp_path / "mem", data=corpus())
    store.apply(folder, embedders={"old": model(64)}, progress=False)
    key = "ab" * 32
    m = memlane.bundle(store, tmp_path / "mem.mlb", key=key)
    assert m["version"] == store.version and len(m["files"]) > 5
    restored = memlane.unbundle(tmp_path / "mem.mlb", tmp_path / "restored", key=key)
    assert restored.version == store.version and restored.verify().ok
    a = lance.dataset(store.uri).to_table().sort_by("id")
    b = lance.dataset(restored.uri).to_table().sort_by("id")
    assert a.equals(b)
    assert files(Path(restored.uri)) == {k: v for k, v in files(Path(store.uri)).items() if k != "_memlane/lock.json"}
    raw = bytearray((tmp_path / "mem.mlb").read_bytes())
    raw[len(raw) // 2] ^= 1
    (tmp_path / "bad.mlb").write_bytes(bytes(raw))
    with pytest.raises(memlane.IntegrityError, match="does not authenticate"):
        memlane.unbundle(tmp_path / "bad.mlb", tmp_path / "never", key=key)
    assert not (tmp_path / "never").exists()
    with pytest.raises(memlane.InvalidInputError, match="encrypted"):
        memlane.unbundle(tmp_path / "mem.mlb", tmp_path / "never")
