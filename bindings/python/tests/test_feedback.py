"""Feedback during an apply: the compatibility sample reports its progress (phase
`sample`, then `compat` for the comparison and fit) before the backfill; a catch-up pass
(records written while the backfill ran) keeps the store's size as its total, so a bar
does not restart at zero; a resumed backfill starts from the rows already committed."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Dict, List, Tuple

import numpy as np

import memlane
from conftest import HashingModel, corpus, write_migration

OLD = """
[[steps]]
op = "add_space"
space = "old"
dimension = 16

[[steps]]
op = "reembed"
space = "old"
embedder = "old"
"""

NEW = """
[[steps]]
op = "add_space"
space = "new"
dimension = 24

[[steps]]
op = "reembed"
space = "new"
embedder = "new"
batch_size = 40
checkpoint_seconds = 0.001
sample = 100
"""


def old_space_store(tmp_path: Path, rows: List[Dict[str, Any]], new: str = NEW) -> Tuple[memlane.Store, Path]:
    """A store of ``rows`` (fragments of 50) embedded into space `old`, and a folder
    with the re-embed into `new` pending."""
    s = memlane.create(tmp_path / "m", data=rows, rows_per_fragment=50)
    folder = tmp_path / "migs"
    write_migration(folder, "0001_old.toml", OLD)
    s.apply(folder, embedders={"old": HashingModel(16)}, progress=False)
    write_migration(folder, "0002_new.toml", new)
    return s, folder


def test_sample_then_backfill_then_catch_up_report_true_progress(tmp_path: Path) -> None:
    s, folder = old_space_store(tmp_path, corpus())
    writer = memlane.open(s.uri)
    new = HashingModel(24, seed=3)
    wrote: List[str] = []
    calls = [0]

    def embed(texts: List[str]) -> np.ndarray:
        calls[0] += 1
        # during the backfill's first batches, another handle writes 30 records (with
        # the old space's model only: the re-embed catches them up)
        # (call 1: the fingerprint's canaries, 2-4: the compat sample, then the backfill)
        if calls[0] == 7 and not wrote:
            rows = [{"id": f"late{i}", "content": f"written during the backfill {i}"} for i in range(30)]
            writer.add(rows, embedders={"old": HashingModel(16)})
            wrote.extend(r["id"] for r in rows)
        return new(texts)

    events: List[Dict[str, Any]] = []
    s.apply(folder, embedders={"new": embed}, progress=lambda p: events.append(dict(p)))
    step = [e for e in events if e["step"] == 1 and e["phase"] not in ("start", "committed")]
    phases = [e["phase"] for e in step]
    first_backfill = phases.index("backfill")
    assert "sample" in phases[:first_backfill] and "compat" in phases[:first_backfill], phases
    sample = [e for e in step if e["phase"] == "sample"]
    assert [e["done"] for e in sample] == sorted(e["done"] for e in sample)
    assert sample[-1]["done"] == sample[-1]["total"] > 0
    rows = len(corpus())
    assert all(e["total"] >= rows for e in step if e["phase"] == "backfill")
    catch_up = [e for e in step if e["phase"] == "catch_up"]
    # the late records (written without the new space's model) were caught up, and the
    # bar stayed near its end instead of restarting at 0 of 30
    assert wrote and catch_up, phases
    assert all(e["total"] >= rows + 30 for e in catch_up), catch_up
    assert all(e["done"] >= rows - 40 for e in catch_up), catch_up
    s.refresh()
    assert s.coverage("new") == (len(s), len(s)) and s.verify().ok


def test_a_resumed_backfill_starts_from_what_was_committed(tmp_path: Path) -> None:
    s, folder = old_space_store(tmp_path, corpus())
    new = HashingModel(24, seed=3)
    calls = [0]

    def failing(texts: List[str]) -> np.ndarray:
        calls[0] += 1
        if calls[0] == 8:  # canaries and the sample first, then backfill batches
            raise RuntimeError("model server went away")
        return new(texts)

    try:
        s.apply(folder, embedders={"new": failing}, progress=False)
    except memlane.EmbedderError:
        pass
    committed = s.refresh().coverage("new")[0]
    assert 0 < committed < len(s)
    events: List[Dict[str, Any]] = []
    s.apply(folder, embedders={"new": new}, progress=lambda p: events.append(dict(p)))
    fill = [e for e in events if e["phase"] in ("backfill", "catch_up")]
    assert fill and fill[0]["done"] >= committed and fill[0]["total"] == len(s)


def test_the_compatibility_sample_is_not_embedded_twice(tmp_path: Path) -> None:
    """The rows the compatibility check embedded with the new model are written by the
    backfill as they are: at 1,500 rows and a 1,000-row sample, the model sees about
    1,500 texts, not 2,500."""
    rows = [{"id": f"r{i}", "content": f"memory {i}: {corpus()[i % 392]['content']}"} for i in range(1500)]
    s, folder = old_space_store(tmp_path, rows, NEW.replace("sample = 100", "sample = 1000"))
    new = HashingModel(24, seed=3)
    seen: List[str] = []
    writer = memlane.open(s.uri)
    calls = [0]

    def counting(texts: List[str]) -> np.ndarray:
        calls[0] += 1
        seen.extend(texts)
        # once the sample is embedded (call 1: canaries, then the sample's batches), a
        # second process rewrites a sampled record: its sampled vector no longer applies
        if calls[0] == 30:
            writer.upsert([{"id": "r0", "content": "rewritten during the backfill"}], embedders={"old": HashingModel(16), "new": new})
        return new(texts)

    report = s.apply(folder, embedders={"new": counting}, progress=False)
    step = report.steps[-1]
    # every sampled record but the rewritten one was written from the sample
    assert 998 <= step["backfill"]["from_sample"] <= 1000, step["backfill"]
    record_texts = [t for t in seen if t.startswith("memory ")]
    assert len(record_texts) <= 1500, len(record_texts)  # no record's text twice
    ids, vecs = s.refresh().vectors("new")
    np.testing.assert_allclose(dict(zip(ids, vecs))["r0"], new(["rewritten during the backfill"])[0], atol=1e-6)
    # and the vectors written from the sample are the model's for those rows
    ids, vecs = s.refresh().vectors("new")
    by_id = dict(zip(ids, vecs))
    for r in rows[1:50]:  # r0 was rewritten (checked above)
        np.testing.assert_allclose(by_id[r["id"]], new([r["content"]])[0], atol=1e-6)
    assert s.verify().ok


def test_status_says_what_a_running_apply_is_doing(tmp_path: Path) -> None:
    """While an apply embeds its compatibility sample (before any commit), `status()`
    from another handle names that phase (the lock carries it); the embedder waits until
    the test has seen it, so nothing depends on timing."""
    import threading

    s, folder = old_space_store(tmp_path, corpus())
    new = HashingModel(24, seed=3)
    seen = threading.Event()
    calls = [0]

    def gated(texts: List[str]) -> np.ndarray:
        calls[0] += 1
        if calls[0] == 3:  # inside the sample (call 1: the canaries)
            assert seen.wait(120), "status never showed the sample phase"
        return new(texts)

    failure: List[BaseException] = []

    def run() -> None:
        try:
            s.apply(folder, embedders={"new": gated}, progress=False)
        except BaseException as e:  # noqa: BLE001 - reported below
            failure.append(e)

    t = threading.Thread(target=run)
    t.start()
    watcher = memlane.open(s.uri)
    activity, text = None, ""
    for _ in range(1200):  # bounded: the heartbeat writes the activity within seconds
        st = watcher.status()
        activity = (st.data.get("lock") or {}).get("activity")
        if activity and "compatibility sample" in activity:
            text = str(st)
            break
        time.sleep(0.1)
    seen.set()
    t.join(300)
    assert not failure, failure
    assert activity and "migration 0002 step 2/2 reembed: embedding the compatibility sample" in activity, activity
    assert "LOCKED" in text and "now: migration 0002 step 2/2 reembed" in text, text
    assert s.refresh().coverage("new") == (len(s), len(s))
