"""Shared fixtures of the memlane Python tests: a real text corpus and a deterministic
model-free embedder (signed feature hashing, like the CLI's `hash:` embedder)."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Callable, List

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[3]
CORPUS = ROOT / "migrations-examples" / "data" / "corpus.jsonl"


def corpus(n: int | None = None) -> List[dict]:
    rows = [json.loads(line) for line in CORPUS.read_text().splitlines() if line.strip()]
    return rows[:n] if n else rows


class HashingModel:
    """A real (if simple) bag-of-words model: texts sharing words get close vectors.
    `seed` picks another "model" of the same dimension."""

    def __init__(self, dim: int, seed: int = 0, batch_size: int = 64) -> None:
        self.dim, self.seed, self.batch_size = dim, seed, batch_size
        self.calls = 0
        self.texts_seen = 0

    def __call__(self, texts: List[str]) -> np.ndarray:
        self.calls += 1
        self.texts_seen += len(texts)
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for i, t in enumerate(texts):
            for w in re.findall(r"\w+", t.lower()) or ["<empty>"]:
                h = hashlib.blake2b(f"{self.seed}:{w}".encode(), digest_size=8).digest()
                j = int.from_bytes(h[:4], "little") % self.dim
                out[i, j] += 1.0 if h[4] & 1 else -1.0
            norm = np.linalg.norm(out[i])
            out[i] = out[i] / norm if norm > 0 else np.eye(1, self.dim, 0, dtype=np.float32)
        return out


@pytest.fixture
def model() -> Callable[[int, int], HashingModel]:
    return lambda dim, seed=0: HashingModel(dim, seed)


def write_migration(folder: Path, name: str, text: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    p = folder / name
    p.write_text(text)
    return p


REEMBED = """
description = "Re-embed with the new model"

[[steps]]
op = "add_space"
space = "{space}"
provider = "test"
model = "{model}"
revision = "1"
dimension = {dim}
metric = "cosine"
normalized = true

[[steps]]
op = "reembed"
space = "{space}"
embedder = "{embedder}"
sample = 200
{extra}
"""
