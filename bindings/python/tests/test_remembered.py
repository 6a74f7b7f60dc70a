"""Spaces that remember their embedder, as a LanceDB user expects of a table with an
embedding function: a real model (wordllama) registered by name and remembered by the
store, so a later process adds and searches text after registering the same name; a
process that does not know the name gets an error saying how; a different model under
the same name (a lying registry) is refused before anything is written; a model that
does not reproduce the stored vectors is never remembered; commands are never stored.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any, List

import numpy as np
import pytest

import memlane
from conftest import write_migration

wordllama = pytest.importorskip("wordllama")

DOCS = [
    "The cat sat on the warm windowsill all afternoon.",
    "Quarterly revenue grew by twelve percent in the retail segment.",
    "A recipe for sourdough bread needs flour, water, salt and a starter.",
    "The mountain trail was closed after the storm washed out the bridge.",
    "Python type hints make large codebases easier to maintain.",
    "The orchestra rehearsed the symphony's final movement twice.",
]

# the model a later process loads, as a user's script would
LOAD = """
import numpy as np, wordllama
from pathlib import Path
wl = wordllama.WordLlama.load(cache_dir=Path(wordllama.__file__).parent, disable_download=True)
def embed(texts):
    v = np.asarray(wl.embed(list(texts)), dtype=np.float64)
    return (v / np.linalg.norm(v, axis=1, keepdims=True)).astype(np.float32)
"""


@pytest.fixture(scope="module")
def wl() -> Any:
    m = wordllama.WordLlama.load(cache_dir=Path(wordllama.__file__).parent, disable_download=True)

    def embed(texts: List[str]) -> np.ndarray:
        v = np.asarray(m.embed(list(texts)), dtype=np.float64)
        return (v / np.linalg.norm(v, axis=1, keepdims=True)).astype(np.float32)

    return embed


def later(script: str) -> subprocess.CompletedProcess:
    """Run ``script`` in a new Python process (a later session)."""
    code = "import memlane\n" + textwrap.dedent(LOAD) + textwrap.dedent(script)
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600)


def records(ids: List[str], texts: List[str]) -> List[dict]:
    return [{"id": i, "content": t} for i, t in zip(ids, texts)]


def test_a_store_remembers_its_model_and_a_later_process_adds_and_searches_text(tmp_path: Path, wl: Any) -> None:
    dim = wl(["probe"]).shape[1]
    memlane.register_embedder("wordllama", wl)
    path = tmp_path / "mem"
    store = memlane.create(
        path,
        spaces=[memlane.Space("text", dim, model="wordllama-l2-supercat", normalized=True, embedder="wordllama")],
        data=records([f"d{i}" for i in range(len(DOCS))], DOCS),
    )
    assert store.spaces[0].embedder == "wordllama"
    assert store.spaces[0].has_fingerprint  # taken from the remembered model at create
    assert store.search("baking bread at home", k=1)[0].id == "d2"

    done = later(
        f"""
        memlane.register_embedder("wordllama", embed)
        s = memlane.open({str(path)!r})
        s.add([{{"id": "n1", "content": "Kittens love sleeping in sunny spots by the window."}}])
        hits = s.search("a cat dozing in the sun", k=2).to_list()
        print(sorted(h["id"] for h in hits))
        """
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "['d0', 'n1']"
    # the vector written by the later process is the model's
    ids, vecs = memlane.open(path).vectors("text", filter="id = 'n1'")
    want = wl(["Kittens love sleeping in sunny spots by the window."])[0]
    assert ids == ["n1"] and float(vecs[0] @ want) > 0.9999


def test_a_process_that_does_not_know_the_model_is_told_how_and_a_lying_one_is_refused(tmp_path: Path, wl: Any) -> None:
    dim = wl(["probe"]).shape[1]
    memlane.register_embedder("wordllama", wl)
    path = tmp_path / "mem"
    memlane.create(
        path,
        spaces=[memlane.Space("text", dim, normalized=True, embedder="wordllama")],
        data=records(["a", "b"], DOCS[:2]),
    )
    unknown = later(
        f"""
        s = memlane.open({str(path)!r})
        try:
            s.add([{{"id": "x", "content": "hello"}}])
        except memlane.EmbedderError as e:
            print("ADD", e)
        try:
            s.search("hello")
        except memlane.EmbedderError as e:
            print("SEARCH", e)
        """
    )
    assert unknown.returncode == 0, unknown.stderr
    assert 'memlane.register_embedder("wordllama", model)' in unknown.stdout
    assert "record `x` has no vector" in unknown.stdout and "SEARCH space `text` remembers" in unknown.stdout

    lying = later(
        f"""
        rng = np.random.default_rng(0)
        def other(texts):  # another model behind the same name: same dimension, other vectors
            v = rng.normal(size=(len(texts), {dim})).astype(np.float32)
            return v / np.linalg.norm(v, axis=1, keepdims=True)
        memlane.register_embedder("wordllama", other)
        s = memlane.open({str(path)!r})
        try:
            s.add([{{"id": "x", "content": "hello"}}])
        except memlane.ModelDrift as e:
            print("REFUSED", e)
        """
    )
    assert lying.returncode == 0, lying.stderr
    assert "REFUSED" in lying.stdout and "wordllama" in lying.stdout
    assert memlane.open(path).count_rows() == 2


def test_use_embedder_remembers_only_a_model_that_reproduces_the_space(tmp_path: Path, wl: Any) -> None:
    dim = wl(["probe"]).shape[1]
    vecs = wl(DOCS)
    store = memlane.create(
        tmp_path / "mem",
        spaces=[memlane.Space("text", dim, normalized=True)],
        data=[{"id": f"d{i}", "content": t, "text": v} for i, (t, v) in enumerate(zip(DOCS, vecs))],
    )
    v0 = store.version

    def wrong(texts: List[str]) -> np.ndarray:
        out = wl(texts)[:, ::-1].copy()  # same model, scrambled axes: not the space's vectors
        return out

    with pytest.raises(memlane.InvalidInputError, match=r"does not reproduce space `text`.*record `d\d`"):
        store.use_embedder("text", wrong, name="scrambled")
    assert "scrambled" not in memlane._embedders.registry()  # a refused model is not registered
    with pytest.raises(memlane.InvalidInputError, match=r"\[embedders.NAME\]"):
        store._s.set_embedder("text", "proc:python serve.py", {})
    assert store.refresh().version == v0 and store.spaces[0].embedder is None

    store.use_embedder("text", wl, name="wl")
    assert store.refresh().spaces[0].embedder == "wl"
    assert any("remembers embedder `wl`" in str(e["entry"].get("reason")) for e in store.history())
    store.add([{"id": "n", "content": "Fresh bread from the oven."}])
    assert store.search("sourdough loaf", k=2).to_list()[0]["id"] in {"d2", "n"}

    store.forget_embedder("text")
    assert store.refresh().spaces[0].embedder is None
    with pytest.raises(memlane.MemlaneError, match="no vector for space `text`"):
        store.add([{"id": "m", "content": "no model now"}])


def test_a_migration_finds_a_registered_model_by_name_and_the_space_remembers_it(tmp_path: Path, wl: Any, model: Any) -> None:
    dim = wl(["probe"]).shape[1]
    store = memlane.create(tmp_path / "mem", data=records([f"d{i}" for i in range(len(DOCS))], DOCS))
    folder = tmp_path / "migrations"
    write_migration(
        folder,
        "0001_wl.toml",
        f"""description = "Embed with wordllama"

[[steps]]
op = "add_space"
space = "text"
model = "wordllama-l2-supercat"
dimension = {dim}
normalized = true

[[steps]]
op = "reembed"
space = "text"
embedder = "wl-registered"
""",
    )
    memlane.register_embedder("wl-registered", wl)
    store.apply(folder, progress=False)  # no embedders=: the registered name serves it
    assert store.refresh().spaces[0].embedder == "wl-registered"
    store.add([{"id": "n", "content": "The choir sang the last movement again."}])
    assert store.search("orchestra practice", k=2).to_list()[0]["id"] in {"d5", "n"}


def test_updates_racing_a_second_writer_process_lose_nothing(tmp_path: Path) -> None:
    """`update` is a read and an upsert: a second process adding records through the
    public API between them must cost neither side a row, and no conflict reaches the
    caller (it is retried)."""
    path = tmp_path / "mem"
    store = memlane.create(
        path,
        spaces=[memlane.Space("h", 16, embedder="hash:16")],
        data=[{"id": f"d{i}", "content": f"doc {i}"} for i in range(200)],
    )
    writer = subprocess.Popen(
        [
            sys.executable,
            "-c",
            textwrap.dedent(
                f"""
                import memlane, sys
                s = memlane.open({str(path)!r})
                i = 0
                while True:
                    s.add([{{"id": f"w{{i}}", "content": f"written {{i}}"}}])
                    print(f"w{{i}}", flush=True)
                    i += 1
                """
            ),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert writer.stdout is not None
    first = writer.stdout.readline().strip()  # the writer is writing before any update starts
    try:
        for n in range(12):
            assert store.update(f"id = 'd{n}'", {"content": f"updated {n}", "kind": "episodic"}) == 1
    finally:
        writer.kill()
        out, _ = writer.communicate()
    written = [first, *out.split()]
    rows = {r["id"]: r for r in memlane.open(path).to_arrow(["id", "content", "kind"]).to_pylist()}
    assert all(w in rows for w in written), "a racing writer's record was lost"
    assert len(rows) >= 200 + len(written)
    for n in range(12):
        assert rows[f"d{n}"]["content"] == f"updated {n}" and rows[f"d{n}"]["kind"] == "episodic"
    # the updated records carry the model's vector for their new text
    ids, vecs = memlane.open(path).vectors("h", filter="id IN ('d0', 'd11')")
    want = memlane.Embedder("hash:16")([f"updated {int(i[1:])}" for i in ids])
    np.testing.assert_allclose(vecs, np.asarray(want), atol=1e-6)
    assert memlane.open(path).verify().ok
