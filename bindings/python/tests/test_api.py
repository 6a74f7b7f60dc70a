"""The public Python API end to end on real Lance stores: records in and out (pyarrow,
polars, pandas, dicts), search, plan/apply with Python embedders, reports, errors."""

from __future__ import annotations

import os

import threading
from pathlib import Path

import lance
import numpy as np
import pandas as pd
import polars as pl
import pyarrow as pa
import pytest

import memlane
from conftest import REEMBED, HashingModel, corpus, write_migration


def old_space() -> memlane.Space:
    return memlane.Space("old", 64, provider="test", model="hash64", revision="1", normalized=True)


@pytest.fixture
def store(tmp_path: Path) -> memlane.Store:
    recs = [{"id": r["id"], "content": r["content"], "source": r["source"]} for r in corpus(120)]
    return memlane.create(tmp_path / "mem", [old_space()], data=recs, embedders={"old": HashingModel(64)})


def reembed_folder(tmp_path: Path, extra: str = "", dim: int = 96) -> Path:
    d = tmp_path / "migrations"
    write_migration(
        d, "0001_new.toml", REEMBED.format(space="new", model="hash96", dim=dim, embedder="new", extra=extra)
    )
    return d


def test_create_add_read_search(store: memlane.Store, tmp_path: Path) -> None:
    assert len(store) == 120
    assert store.active_space == "old"
    assert [s.name for s in store.spaces] == ["old"]
    assert store.spaces[0].has_fingerprint  # recorded by the embedder given at create
    t = store.to_arrow()
    assert t.num_rows == 120 and "source" in t.column_names  # extra key became a field
    ids, vecs = store.vectors("old")
    assert vecs.shape == (120, 64) and vecs.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vecs, axis=1), 1.0, atol=1e-5)

    m = HashingModel(64)
    # pyarrow table with vectors under the space name
    new = pa.table({"id": ["a1", "a2"], "content": ["parse JSON text", "open a file"]})
    store.add(new, embedders={"old": m})
    # polars and pandas through the Arrow PyCapsule interface
    store.add(pl.DataFrame({"id": ["p1"], "content": ["polars row about JSON"]}), embedders={"old": m})
    store.add(pd.DataFrame({"id": ["d1"], "content": ["pandas row"]}), embedders={"old": m})
    # explicit vectors, 2-D numpy in a dict of columns
    v = m(["explicit vector row"])
    store.add({"id": ["x1"], "content": ["explicit vector row"], "old": v})
    assert len(store) == 125

    hits = store.search(m(["parse JSON text"])[0], k=3)
    assert hits[0].id == "a1" and hits[0].distance < 1e-4
    filt = store.search(m(["parse JSON text"])[0], k=3, filter="source = 'argparse'")
    assert filt and all(h.id.startswith("argparse") for h in filt)

    # pylance reads the same rows memlane wrote
    ds = lance.dataset(str(tmp_path / "mem"))
    assert ds.count_rows() == 125


def test_bad_vectors_are_refused_with_attributes(store: memlane.Store) -> None:
    before = store.version
    with pytest.raises(memlane.IncompatibleSpaceError) as ei:
        store.add({"id": ["bad"], "content": ["x"], "old": np.ones((1, 32), np.float32)})
    e = ei.value
    assert isinstance(e, memlane.MemlaneError)
    assert (e.record_id, e.space, e.expected, e.got) == ("bad", "old", 64, 32)
    assert "dimension 32" in str(e)
    nan = np.full((1, 64), np.nan, np.float32)
    with pytest.raises(memlane.IncompatibleSpaceError, match="non-finite"):
        store.add({"id": ["nan"], "content": ["x"], "old": nan})
    with pytest.raises(memlane.InvalidInputError, match="already exist"):
        store.add([{"id": corpus(1)[0]["id"], "content": "dup"}], embedders={"old": HashingModel(64)})
    with pytest.raises(memlane.InvalidInputError, match="cannot read records"):
        store.add(42)
    store.refresh()
    assert store.version == before and len(store) == 120


def test_plan_apply_reports_and_history(store: memlane.Store, tmp_path: Path) -> None:
    folder = reembed_folder(tmp_path)
    plan = store.plan(folder)
    assert plan.embedders == ["new"] and not plan.blocked
    assert "reembed" in str(plan) and "<table" in plan._repr_html_()

    seen = []
    report = store.apply(folder, embedders={"new": HashingModel(96, seed=1)}, progress=seen.append)
    assert report.ok and seen and seen[-1]["total"] == 120
    assert {s["op"] for s in report.steps} == {"add_space", "reembed"}
    (check,) = report.compat_checks
    assert check["from"] == "old" and check["to"] == "new" and check["verdict"] in ("pass", "review", "block")
    assert "overlap@10" in check["metrics"] and "overlap@10.baseline" in check["metrics"]
    html = report._repr_html_()
    assert "compatibility" in html and check["verdict"].upper() in html
    assert store.refresh().active_space == "new"
    assert store.coverage("new") == (120, 120)

    status = store.status()
    assert status["active_space"] == "new" and status["in_flight"] is None
    hist = store.history()
    assert len(hist) >= 4 and "memlane history" in hist._repr_html_()
    assert any((v.get("entry") or {}).get("action") == "migration" for v in hist)
    assert store.verify(folder).ok
    # the plan is now empty; applying again does nothing
    assert store.plan(folder).migrations == []


def test_embedder_exception_keeps_traceback_and_resumes(store: memlane.Store, tmp_path: Path) -> None:
    folder = reembed_folder(tmp_path)
    good = HashingModel(96, seed=1)
    calls = {"n": 0}

    def flaky(texts):
        calls["n"] += 1
        if calls["n"] > 3:  # after the fingerprint and the compatibility sample
            raise RuntimeError("GPU fell off the bus")
        return good(texts)

    flaky.batch_size = 16  # type: ignore[attr-defined]
    with pytest.raises(memlane.EmbedderError) as ei:
        store.apply(folder, embedders={"new": flaky}, progress=False)
    e = ei.value
    assert isinstance(e.__cause__, RuntimeError) and "GPU fell off the bus" in str(e.__cause__)
    assert e.__cause__.__traceback__ is not None
    assert e.embedder == "new" and e.record_id
    # readable at its last good version, with the migration in flight
    s2 = memlane.open(store.uri)
    assert len(s2) == 120 and s2.status()["in_flight"] is not None
    assert s2.active_space == "old"
    report = s2.apply(folder, embedders={"new": good}, progress=False)
    assert report.ok and s2.refresh().active_space == "new"
    assert s2.coverage("new") == (120, 120)


def test_gates_review_needs_approval(store: memlane.Store, tmp_path: Path) -> None:
    # an impossible review threshold: the verdict is "review"
    folder = reembed_folder(tmp_path, extra='\n[gates]\n"overlap@10" = { review_below = 1.01 }\n')
    emb = {"new": HashingModel(96, seed=1)}
    with pytest.raises(memlane.ReviewRequired) as ei:
        store.apply(folder, embedders=emb, progress=False)
    assert isinstance(ei.value, memlane.GateBlocked)
    assert ei.value.check["verdict"] == "review"
    assert store.refresh().active_space == "old"
    # the approver is named the way git names an author
    os.environ["GIT_AUTHOR_NAME"], os.environ["GIT_AUTHOR_EMAIL"] = "Ada Lovelace", "ada@example.org"
    try:
        report = store.apply(folder, embedders=emb, progress=False, approve="checked the neighbours by hand")
    finally:
        del os.environ["GIT_AUTHOR_NAME"], os.environ["GIT_AUTHOR_EMAIL"]
    (check,) = report.compat_checks
    assert check["approval"]["reason"] == "checked the neighbours by hand"
    assert check["approval"]["by"] == "Ada Lovelace <ada@example.org>"
    # and the report's notebook view does not call a passed apply blocked
    assert "BLOCK" not in report._repr_html_()


def test_gate_block(store: memlane.Store, tmp_path: Path) -> None:
    folder = reembed_folder(tmp_path, extra='\n[gates]\n"overlap@10" = { block_below = 1.01 }\n')
    with pytest.raises(memlane.GateBlocked) as ei:
        store.apply(folder, embedders={"new": HashingModel(96, seed=1)}, progress=False)
    assert not isinstance(ei.value, memlane.ReviewRequired)
    assert ei.value.check["verdict"] == "block"


def test_model_drift_is_refused(store: memlane.Store) -> None:
    # same name, same dimension, another model: the fingerprint catches it
    with pytest.raises(memlane.ModelDrift) as ei:
        store.add([{"id": "z", "content": "new memory"}], embedders={"old": HashingModel(64, seed=7)})
    assert ei.value.space == "old" and ei.value.cosine < 0.999


def test_invariant_violation_commits_nothing(store: memlane.Store, tmp_path: Path) -> None:
    d = tmp_path / "inv"
    write_migration(
        d,
        "0001_field.toml",
        '[[steps]]\nop = "add_field"\nfield = "importance"\ntype = "float64"\n\n'
        '[[invariants]]\ncheck = "expression"\nname = "importance set"\nexpr = "importance IS NOT NULL"\n',
    )
    v = store.version
    with pytest.raises(memlane.InvariantViolation) as ei:
        store.apply(d, progress=False)
    assert ei.value.report["invariants"]
    assert store.refresh().version == v


def test_checksum_mismatch(store: memlane.Store, tmp_path: Path) -> None:
    folder = reembed_folder(tmp_path)
    store.apply(folder, embedders={"new": HashingModel(96, seed=1)}, progress=False)
    f = folder / "0001_new.toml"
    f.write_text(f.read_text().replace("sample = 200", "sample = 300"))
    with pytest.raises(memlane.ChecksumMismatch) as ei:
        store.plan(folder)
    assert ei.value.file == "0001_new.toml"


def test_lock_held_while_another_apply_runs(store: memlane.Store, tmp_path: Path) -> None:
    folder = reembed_folder(tmp_path)
    inside, release = threading.Event(), threading.Event()
    good = HashingModel(96, seed=1)
    calls = {"n": 0}

    def slow(texts):
        calls["n"] += 1
        if calls["n"] == 3:  # first backfill batch
            inside.set()
            release.wait(30)
        return good(texts)

    errors = []
    t = threading.Thread(target=lambda: errors.append(_apply(store, folder, slow)))
    t.start()
    assert inside.wait(30), "the first apply never reached its backfill"
    try:
        other = memlane.open(store.uri)
        with pytest.raises(memlane.LockHeld) as ei:
            other.apply(folder, embedders={"new": good}, progress=False)
        assert ei.value.pid > 0
    finally:
        release.set()
        t.join(60)
    assert errors == [None]


def _apply(store, folder, emb):
    try:
        store.apply(folder, embedders={"new": emb}, progress=False)
        return None
    except Exception as e:  # pragma: no cover - reported by the assertion
        return e


def test_compat_on_numpy() -> None:
    rng = np.random.default_rng(0)
    old = rng.standard_normal((600, 32)).astype(np.float32)
    q, _ = np.linalg.qr(rng.standard_normal((32, 32)))
    rotated = (old @ q).astype(np.float32)
    r = memlane.compat(old, rotated, k=10)
    assert r["overlap"]["mean"] > 0.99 and r["overlap"]["baseline"] < 0.05
    assert r.metrics["procrustes.mean_cosine"] > 0.99
    unrelated = rng.standard_normal((600, 48)).astype(np.float32)
    u = memlane.compat(old, unrelated, k=10)
    assert u["overlap"]["mean"] < 0.1
    assert "shuffled baseline" in u._repr_html_()
    with pytest.raises(memlane.InvalidInputError, match="same records"):
        memlane.compat(old, unrelated[:10])


def test_store_compat_and_adapter_search(store: memlane.Store, tmp_path: Path) -> None:
    folder = reembed_folder(tmp_path)
    new_model = HashingModel(96, seed=1)
    store.apply(folder, embedders={"new": new_model}, progress=False)
    r = store.compat("old", "new", sample=120)
    assert r["n"] == 120 and 0.0 <= r["overlap"]["mean"] <= 1.0
    q = new_model(["parse a JSON document"])[0]
    native = store.search(q, k=5, space="new")
    assert len(native) == 5
    if any(a for a in store.status()["spaces"]):  # adapter search when one qualified
        try:
            adapted = store.search(q, k=5, space="old", query_space="new")
            assert len(adapted) == 5
        except memlane.NotFoundError as e:
            assert "no adapter" in str(e)


def test_restore_tag_and_exceptions_hierarchy(store: memlane.Store, tmp_path: Path) -> None:
    v = store.tag("before-upgrade")
    folder = reembed_folder(tmp_path)
    store.apply(folder, embedders={"new": HashingModel(96, seed=1)}, progress=False)
    assert ("before-upgrade", v) in store.tags()
    nv = store.restore("before-upgrade", reason="new model regressed")
    assert nv > v and store.refresh().active_space == "old"
    with pytest.raises(memlane.NotFoundError):
        store.restore("no-such-tag", reason="x")
    with pytest.raises(memlane.StoreExistsError):
        memlane.create(store.uri, [old_space()])
    with pytest.raises(memlane.NotFoundError):
        memlane.open(tmp_path / "nowhere")
    for cls in (memlane.MigrationError, memlane.LockHeld, memlane.IncompatibleSpaceError):
        assert issubclass(cls, memlane.MemlaneError)
    with pytest.raises(memlane.InvalidInputError):
        memlane.Space("Bad Name", 8)
    with pytest.raises(memlane.InvalidInputError, match="metric"):
        memlane.Space("ok", 8, metric="manhattan")


def test_dry_run_and_plots(store: memlane.Store, tmp_path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    folder = reembed_folder(tmp_path, extra='\n[gates]\n"recall@10" = { block_below = 0.0, review_below = 0.01 }\n')
    v = store.version
    dry = store.apply(folder, embedders={"new": HashingModel(96, seed=1)}, progress=False, dry_run=True)
    assert dry["dry_run"] and store.refresh().version == v and store.active_space == "old"
    report = store.apply(folder, embedders={"new": HashingModel(96, seed=1)}, progress=False)
    fig = report.plot()
    assert len(fig.axes) == 1 and fig.axes[0].patches  # one bar per gate
    fig2 = store.compat("old", "new", sample=120).plot()
    assert len(fig2.axes) == 2 and fig2.axes[0].patches and fig2.axes[1].patches


def test_validate_reports_every_failure(store: memlane.Store, tmp_path: Path) -> None:
    folder = tmp_path / "checks"
    write_migration(
        folder,
        "invariants.toml",
        '[[invariants]]\ncheck = "field"\nfield = "source"\nvalues = ["argparse"]\n\n'
        '[[invariants]]\ncheck = "duplicates"\nspace = "old"\n',
    )
    m = HashingModel(64)
    store.add([{"id": "twin", "content": corpus(1)[0]["content"], "source": "argparse"}], embedders={"old": m})
    r = store.validate(folder)
    assert not r.ok
    names = {x["name"]: x for x in r.failed()}
    assert "field[source]" in names and "duplicates[old]" in names
    assert names["duplicates[old]"]["sample_ids"]
    assert "memlane validate" in r._repr_html_() and "FAIL" in r._repr_html_()
    hist = store.validate_history()
    assert any(p["source"] == "validate" and p["check"] == "field[source]" for p in hist)


def test_export_sample_and_review_like_the_browser_preview(store: memlane.Store, tmp_path: Path) -> None:
    gates = '\n[gates]\n"overlap@10" = { block_below = 0.05, review_below = 0.99 }\n'
    d = reembed_folder(tmp_path, extra=gates)
    sample = tmp_path / "sample.arrow"
    # without the new model the sample says how to add it
    v0 = store.version
    info = store.export_sample(sample, rows=80, migrations=d)
    assert info["rows"] == 80 and info["store_rows"] == 120
    assert "new" not in info["spaces"] and "--embedder new=" in info["notes"][0]
    info = store.export_sample(sample, rows=80, migrations=d, embedders={"new": HashingModel(96, seed=5)})
    assert info["embedded"] == {"new": "new"}
    t = pa.ipc.open_file(str(sample)).read_all()
    assert {"id", "content", "vec_old", "vec_new"} <= set(t.column_names)
    assert b"memlane.snapshot" in t.schema.metadata
    assert len(store) == 120 and store.version == v0  # only read
    r = memlane.review(sample, d)
    assert isinstance(r, memlane.Review)
    assert r.verdict == "review", str(r)
    (step,) = r.steps
    assert (step["from"], step["to"], step["check"]["verdict"]) == ("old", "new", "review")
    assert any(i["name"] == "vectors_valid[new]" and i["passed"] for i in r.invariants)
    assert "REVIEW" in str(r) and "REVIEW" in r._repr_html_()
    assert r.plan.embedders == ["new"]

    class Broken:
        def __call__(self, texts: list) -> np.ndarray:
            raise RuntimeError("model server down")

    with pytest.raises(memlane.EmbedderError) as e:
        store.export_sample(tmp_path / "other.arrow", rows=10, migrations=d, embedders={"new": Broken()})
    assert isinstance(e.value.__cause__, RuntimeError)
    assert not (tmp_path / "other.arrow").exists()


def _hold_lock(store_uri: str) -> "subprocess.Popen[bytes]":
    """A live process on this host recorded as the lock holder (as `memlane apply`
    records itself), so the library must refuse every mutation that needs the lock."""
    import datetime as dt
    import json
    import socket
    import subprocess

    holder = subprocess.Popen(["sleep", "60"])
    with open(f"/proc/{holder.pid}/stat") as f:
        start = int(f.read().rsplit(")", 1)[1].split()[19])
    now = dt.datetime.now(dt.timezone.utc)
    info = {
        "holder": "memlane apply (another process)",
        "host": socket.gethostname(),
        "pid": holder.pid,
        "token": "t",
        "since": now.isoformat(),
        "heartbeat": now.isoformat(),
        "expires": (now + dt.timedelta(minutes=5)).isoformat(),
        "start_time": start,
    }
    lock = Path(store_uri) / "_memlane" / "lock.json"
    lock.parent.mkdir(exist_ok=True)
    lock.write_text(json.dumps(info))
    return holder


def test_restore_abort_contract_take_the_lock(store: memlane.Store, tmp_path: Path) -> None:
    """Issue 14/15: the lock is taken inside the library, so Python cannot forget it."""
    v = store.version
    holder = _hold_lock(store.uri)
    try:
        with pytest.raises(memlane.LockHeld) as ei:
            store.restore(v, "while another process migrates")
        assert ei.value.pid == holder.pid
        with pytest.raises(memlane.LockHeld):
            store.abort("while another process migrates")
        with pytest.raises(memlane.LockHeld):
            store.contract("old", "while another process migrates")
        assert store.version == v
    finally:
        holder.kill()
        holder.wait()
    # the holder is gone: the lock is taken over at once and the restore goes ahead
    assert store.restore(v, "the holder died") == v + 1


def test_state_errors_are_their_own_class(store: memlane.Store) -> None:
    """Issue 15: an operation the store's state does not allow is a StateError (naming
    the way forward), not an input error; nothing is committed."""
    v = store.version
    with pytest.raises(memlane.StateError, match="no migration is in flight"):
        store.abort("nothing to abort")
    with pytest.raises(memlane.StateError, match="active space"):
        store.contract("old", "it serves")
    store.tag("kept")
    with pytest.raises(memlane.StateError, match="already exists"):
        store.tag("kept")
    assert store.refresh().version == v
    for cls in (memlane.StateError, memlane.ConflictError, memlane.StorageError, memlane.InternalError):
        assert issubclass(cls, memlane.MemlaneError)
        assert not issubclass(cls, memlane.InvalidInputError)


def test_delete_where(store: memlane.Store) -> None:
    ids = store.to_arrow(["id"]).column("id").to_pylist()
    assert store.delete(f"id = '{ids[0]}' OR id = '{ids[1]}'") == 2
    assert len(store) == 118
    assert store.delete("id = 'no such id'") == 0
    with pytest.raises(memlane.InvalidInputError, match="nosuchfield|not valid"):
        store.delete("nosuchfield = 1")
    assert store.verify().ok


def test_create_index_search_uses_it_and_pylance_sees_it(tmp_path: Path) -> None:
    recs = [{"id": r["id"], "content": r["content"]} for r in corpus()]
    s = memlane.create(tmp_path / "ix", [old_space()], data=recs, embedders={"old": HashingModel(64)})
    folder = tmp_path / "idx"
    write_migration(
        folder,
        "0001_index.toml",
        '[[steps]]\nop = "create_index"\nspace = "old"\nindex = { kind = "ivf_pq", partitions = 4, sub_vectors = 8, nprobes = 4 }\n',
    )
    report = s.apply(folder)
    assert report.ok
    (step,) = report.steps
    assert any(i["check"] == "index_recall" and i["passed"] for i in step["invariants"])
    q = HashingModel(64)([recs[9]["content"]])[0]
    hits = s.search(q, k=3)
    assert hits.index == "ivf_pq" and hits[0].id == recs[9]["id"]
    exact = s.search(q, k=3, exact=True)
    assert exact.index is None and exact[0].id == hits[0].id
    names = [i.name for i in lance.dataset(str(tmp_path / "ix")).describe_indices()]
    assert names == ["vec_old_idx"]


def test_a_deleted_index_falls_back_to_exact_search_with_a_warning_and_verify_names_it(tmp_path: Path) -> None:
    recs = [{"id": r["id"], "content": r["content"]} for r in corpus()]
    s = memlane.create(tmp_path / "ix", [old_space()], data=recs, embedders={"old": HashingModel(64)})
    folder = tmp_path / "idx"
    write_migration(
        folder,
        "0001_index.toml",
        '[[steps]]\nop = "create_index"\nspace = "old"\nindex = { kind = "ivf_pq", partitions = 4, sub_vectors = 8, nprobes = 4 }\n',
    )
    assert s.apply(folder).ok
    assert s.verify().ok
    for f in (tmp_path / "ix" / "_indices").rglob("*"):
        if f.is_file():
            f.unlink()
    q = HashingModel(64)([recs[9]["content"]])[0]
    hits = memlane.open(tmp_path / "ix").search(q, k=3)
    with pytest.warns(RuntimeWarning, match="optimize_index"):  # when the query runs
        assert hits.index is None and hits[0].id == recs[9]["id"]
    assert hits.fallback is not None and "vec_old_idx" in hits.fallback
    report = memlane.open(tmp_path / "ix").verify()
    assert not report.ok
    (bad,) = [c for c in report.data["checks"] if c["name"] == "indexes"]
    assert not bad["ok"] and "optimize_index" in bad["message"]
