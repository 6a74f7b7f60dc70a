"""Errors at the edges, as a Python user meets them: every wrong argument is a memlane
exception that names the argument, the user's path or field, and a fix in Python terms
(no dependency's source path, no ValueError/OverflowError from the binding); Ctrl-C
during an apply is a KeyboardInterrupt (a real SIGINT to a real process) with the store
intact and resumable; exceptions carry their documented attributes."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, List

import numpy as np
import pytest

import memlane
from conftest import HashingModel, corpus, write_migration

REEMBED = """
[[steps]]
op = "add_space"
space = "e8"
dimension = 8

[[steps]]
op = "reembed"
space = "e8"
embedder = "e8"
batch_size = 50
"""


def small(tmp_path: Path) -> memlane.Store:
    m = HashingModel(8)
    sp = memlane.Space("h8", 8, provider="test", model="hash8", normalized=True)
    return memlane.create(tmp_path / "m", [sp], data=corpus(40), embedders={"h8": m})


def test_wrong_arguments_are_memlane_errors_naming_them(tmp_path: Path) -> None:
    s = small(tmp_path)
    q = HashingModel(8)(["q"])[0]
    with pytest.raises(memlane.InvalidInputError, match=r"search got text \('hello'\).*embedder=model.*use_embedder\('h8'"):
        s.search("hello")
    for k in (-1, 0):
        with pytest.raises(memlane.InvalidInputError, match="k .* must be at least 1"):
            s.search(q, k=k)
    with pytest.raises(memlane.InvalidInputError, match="k must be an int"):
        s.search(q, k="3")  # type: ignore[arg-type]
    with pytest.raises(memlane.InvalidInputError, match=r"filter `nope = 1` is not valid SQL.*fields are id, content") as e:
        list(s.search(q, filter="nope = 1"))  # a query runs when its hits are used
    assert "__src" not in str(e.value) and ".rs:" not in str(e.value)
    with pytest.raises(memlane.InvalidInputError, match="no field `nope`"):
        s.to_arrow(["nope"])
    with pytest.raises(memlane.InvalidInputError, match="delete predicate `nope = 1`"):
        s.delete("nope = 1")
    with pytest.raises(memlane.StorageError, match="/proc/nope/x: cannot create a store there.*exists and is writable"):
        memlane.create("/proc/nope/x", [memlane.Space("a", 4)])
    with pytest.raises(memlane.NotFoundError, match="nope"):
        s.plan(tmp_path / "nope")


def test_embedder_errors_speak_python(tmp_path: Path) -> None:
    s = small(tmp_path)
    # (the first batch an add embeds is the space's fingerprint canaries)
    with pytest.raises(memlane.EmbedderError, match=r"returned None for \d+ texts; return an array of shape") as e:
        s.add({"id": ["n1"], "content": ["x"]}, embedders={"h8": lambda t: None})
    assert e.value.embedder == "h8" and e.value.record_id is not None
    assert "run apply again" not in str(e.value)
    with pytest.raises(memlane.IncompatibleSpaceError, match=r'embedders=\{"h8": model\}') as e2:
        s.add({"id": ["n2"], "content": ["x"]})
    assert e2.value.record_id == "n2" and e2.value.space == "h8"
    # attributes an error does not carry exist as None (as the stub says)
    assert e2.value.expected is None and e.value.fragment is None
    assert len(s) == 40


def test_text_search_and_remembered_embedders(tmp_path: Path) -> None:
    s = small(tmp_path)
    m = HashingModel(8)
    s.use_embedder("h8", m)
    hits = s.search(corpus(40)[3]["content"], k=1)
    assert hits[0].id == corpus(40)[3]["id"]
    s.add({"id": ["new"], "content": ["embedded by the remembered model"]})
    assert s.search("embedded by the remembered model", k=1)[0].id == "new"
    other = memlane.open(s.uri)
    assert other.search("embedded by the remembered model", k=1, embedder=m)[0].id == "new"
    # internal digest columns stay out of user frames
    assert not [c for c in s.to_arrow().column_names if c.endswith("__src")]
    assert "vec_h8__src" in s.to_arrow(["id", "vec_h8__src"]).column_names


def test_keyboard_interrupt_inside_an_embedder_is_a_keyboard_interrupt(tmp_path: Path) -> None:
    s = memlane.create(tmp_path / "m", data=corpus(300))
    folder = tmp_path / "migs"
    write_migration(folder, "0001_e8.toml", REEMBED)
    calls: List[int] = []

    def interrupted(texts: List[str]) -> Any:
        calls.append(len(texts))
        if len(calls) == 3:
            raise KeyboardInterrupt
        return HashingModel(8)(texts)

    with pytest.raises(KeyboardInterrupt):
        s.apply(folder, embedders={"e8": interrupted}, progress=False)
    s.refresh()
    assert s.verify().ok
    s.apply(folder, embedders={"e8": HashingModel(8)}, progress=False)
    assert s.coverage("e8") == (len(s), len(s))


CHILD = """
import sys, time, pathlib
import numpy as np
import memlane
marker = pathlib.Path(sys.argv[3])
n = [0]
def slow(texts):
    n[0] += 1
    marker.write_text(str(n[0]))
    time.sleep(0.2)
    return np.ones((len(texts), 8), dtype=np.float32)
memlane.open(sys.argv[1]).apply(sys.argv[2], embedders={"e8": slow}, progress=False)
print("not interrupted")
"""


def test_ctrl_c_stops_an_apply_cleanly(tmp_path: Path) -> None:
    """A real SIGINT to a process running an apply: the process ends with
    KeyboardInterrupt (not an EmbedderError), the store verifies, and apply resumes."""
    s = memlane.create(tmp_path / "m", data=corpus(2000))
    folder = tmp_path / "migs"
    write_migration(folder, "0001_e8.toml", REEMBED)
    child, marker = tmp_path / "child.py", tmp_path / "marker"
    child.write_text(CHILD)
    p = subprocess.Popen([sys.executable, str(child), s.uri, str(folder), str(marker)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    for _ in range(6000):  # until the embedder was called a few times (bounded)
        if marker.exists() and marker.read_text() and int(marker.read_text()) >= 4:
            break
        assert p.poll() is None, p.communicate()
        time.sleep(0.01)
    p.send_signal(signal.SIGINT)
    out, err = p.communicate(timeout=300)
    assert "not interrupted" not in out
    assert "KeyboardInterrupt" in err and "EmbedderError" not in err, err
    s.refresh()
    assert s.verify().ok
    s.apply(folder, embedders={"e8": HashingModel(8)}, progress=False)
    assert s.coverage("e8") == (len(s), len(s))
    assert s.verify().ok
