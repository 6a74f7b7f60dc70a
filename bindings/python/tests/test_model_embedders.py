"""Models as Python users hold them, passed straight to memlane: the real OpenAI client
against a real OpenAI-compatible server (wordllama on 127.0.0.1), memlane's own `http:`
embedder from Python with its counters in the report and the progress, the migrations
folder's memlane.toml read by `apply`, and the sentence-transformers / fastembed call
shapes (duck-typed: their real models need torch or a download, so the wrappers here
call wordllama through exactly the methods and arguments those libraries define).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional

import lance
import numpy as np
import pytest

import memlane
from conftest import ROOT, corpus, write_migration

wordllama = pytest.importorskip("wordllama")
SERVER = ROOT / "tests" / "python" / "openai_server.py"

MIGRATION = """
description = "Embed every memory with wordllama"

[[steps]]
op = "add_space"
space = "wl"
dimension = 256
metric = "cosine"
normalized = true

[[steps]]
op = "reembed"
space = "wl"
embedder = "wl"
"""


@pytest.fixture(scope="module")
def wl() -> Any:
    return wordllama.WordLlama.load(cache_dir=Path(wordllama.__file__).parent, disable_download=True)


def unit(v: Any) -> np.ndarray:
    a = np.asarray(v, dtype=np.float64)
    return (a / np.linalg.norm(a, axis=1, keepdims=True)).astype(np.float32)


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    p = subprocess.Popen([sys.executable, str(SERVER), "--model", "wordllama"], stdout=subprocess.PIPE, text=True)
    line = p.stdout.readline() if p.stdout else ""
    assert line.startswith("PORT "), line
    yield f"http://127.0.0.1:{int(line.split()[1])}/v1"
    p.kill()
    p.wait()


def migrate(tmp_path: Path, embedders: Optional[Dict[str, Any]], config: str = "", **kw: Any) -> Any:
    store = memlane.create(tmp_path / "mem", data=corpus(120))
    folder = tmp_path / "migrations"
    write_migration(folder, "0001_wl.toml", MIGRATION)
    if config:
        (folder / "memlane.toml").write_text(config)
    report = store.apply(folder, embedders=embedders, progress=kw.pop("progress", False), **kw)
    return store, report


def assert_wordllama_vectors(store: Any, wl: Any) -> None:
    t = lance.dataset(store.uri).to_table(columns=["content", "vec_wl"])
    got = np.asarray(t["vec_wl"].to_pylist(), dtype=np.float32)
    want = unit(wl.embed(t["content"].to_pylist()))
    assert np.sum(got * want, axis=1).min() > 0.9999


def test_openai_client_is_an_embedder(tmp_path: Path, server: str, wl: Any) -> None:
    openai = pytest.importorskip("openai")
    client = openai.OpenAI(api_key="unused", base_url=server, max_retries=0)
    with pytest.raises(memlane.InvalidInputError, match="model="):
        migrate(tmp_path / "a", {"wl": client})
    e = memlane.embedder(client, model="wordllama", batch_size=50)
    assert e.batch_size == 50
    store, report = migrate(tmp_path / "b", {"wl": e})
    assert report.ok
    assert_wordllama_vectors(store, wl)


def test_memlanes_http_embedder_from_python_counts_its_requests(tmp_path: Path, server: str, wl: Any) -> None:
    e = memlane.Embedder(f"http:{server},model=wordllama,batch=16,concurrency=2")
    assert e.batch_size == 16 * 2 * 4
    seen: List[Dict[str, Any]] = []
    store, report = migrate(tmp_path, {"wl": e}, progress=seen.append)
    assert_wordllama_vectors(store, wl)
    calls = [s["backfill"]["embedder"] for s in report.steps if s.get("backfill")]
    # the fingerprint's 8 canaries (one request), then 120 rows in requests of 16
    assert calls and calls[0]["texts"] == 128 and calls[0]["requests"] == 1 + 8 and calls[0]["retries"] == 0
    assert calls[0]["tokens"] > 0
    assert any(p.get("requests") for p in seen) and any(p.get("eta_secs") is not None for p in seen)
    # the native embedder is callable from Python too, and counts those calls
    v = e(["a memory about tea"])
    assert v.shape == (1, 256) and v.dtype == np.float32
    assert e.calls is not None and e.calls["texts"] >= 121


def test_apply_reads_the_folders_memlane_toml(tmp_path: Path, server: str, wl: Any) -> None:
    config = f'[embedders.wl]\ntype = "http"\nurl = "{server}"\nmodel = "wordllama"\nbatch_size = 40\n'
    store, report = migrate(tmp_path, None, config)
    assert report.ok
    assert_wordllama_vectors(store, wl)
    loaded = memlane.load_embedders(tmp_path / "migrations" / "memlane.toml")
    assert set(loaded) == {"wl"} and loaded["wl"].batch_size == 40 * 4 * 4
    with pytest.raises(memlane.NotFoundError):
        memlane.load_embedders(tmp_path / "nope.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text('[embedders.x]\ntype = "http"\nurl = "http://h/v1"\nmodel = "m"\napi_key = "sk-1"\n')
    with pytest.raises(memlane.InvalidInputError, match="api_key_env"):
        memlane.load_embedders(bad)


class SentenceTransformerShaped:
    """The sentence-transformers call shape: `encode(sentences, batch_size=32,
    convert_to_numpy=True, show_progress_bar=...)` and
    `get_sentence_embedding_dimension()`; a torch module is also callable."""

    def __init__(self, wl: Any) -> None:
        self.wl = wl
        self.batches: List[int] = []

    def get_sentence_embedding_dimension(self) -> int:
        return 256

    def encode(self, sentences: List[str], batch_size: int = 32, convert_to_numpy: bool = True,
               show_progress_bar: Optional[bool] = None) -> np.ndarray:
        self.batches.append(len(sentences))
        return unit(self.wl.embed(sentences))

    def __call__(self, features: Dict[str, Any]) -> Dict[str, Any]:  # nn.Module.forward
        raise AssertionError("memlane must call encode, not the module")


class FastembedShaped:
    """fastembed's `TextEmbedding`: `embed(documents, batch_size=256)` yields arrays."""

    model_name = "wordllama"

    def __init__(self, wl: Any) -> None:
        self.wl = wl

    def embed(self, documents: List[str], batch_size: int = 256) -> Iterator[np.ndarray]:
        for i in range(0, len(documents), batch_size):
            yield from unit(self.wl.embed(documents[i : i + batch_size]))


def test_model_objects_are_adapted(tmp_path: Path, wl: Any) -> None:
    st = SentenceTransformerShaped(wl)
    store, report = migrate(tmp_path / "st", {"wl": st})
    assert report.ok and max(st.batches) == 32
    assert_wordllama_vectors(store, wl)
    store, report = migrate(tmp_path / "fe", {"wl": FastembedShaped(wl)})
    assert report.ok
    assert_wordllama_vectors(store, wl)
    with pytest.raises(memlane.InvalidInputError, match="embedder `wl`"):
        migrate(tmp_path / "bad", {"wl": 42})
