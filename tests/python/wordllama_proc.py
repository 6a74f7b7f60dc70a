"""A long-lived model process for memlane's `proc:` embedder: wordllama (256-d, unit
length) reading one JSON array of texts per line on stdin and answering one JSON array
of vectors per line on stdout, until stdin ends.

Faults for the tests: `--crash-on N` exits with status 3 on its Nth request and
`--hang-on N` stops answering at its Nth request, with `--once FILE` only while FILE does not
exist (it is created first, so a restarted process behaves). A banner
line that is not JSON is printed first, as libraries do. Each request is counted in
`--log` (one line per request: its texts' count).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import wordllama


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--crash-on", type=int)
    ap.add_argument("--hang-on", type=int)
    ap.add_argument("--once", type=Path)
    ap.add_argument("--log", type=Path)
    a = ap.parse_args()
    wl = wordllama.WordLlama.load(cache_dir=Path(wordllama.__file__).parent, disable_download=True)
    print("wordllama loaded (this line is not JSON and is skipped)", flush=True)
    n = 0
    for line in sys.stdin:
        if not line.strip():
            continue
        n += 1
        texts = json.loads(line)
        if a.log:
            with a.log.open("a") as f:
                f.write(f"{len(texts)}\n")
        armed = a.once is None or not a.once.exists()
        if armed and n in (a.crash_on, a.hang_on):
            if a.once is not None:
                a.once.touch()
            if n == a.crash_on:
                os._exit(3)
            time.sleep(3600)
        v = np.asarray(wl.embed(texts), dtype=np.float64)
        v = v / np.linalg.norm(v, axis=1, keepdims=True)
        sys.stdout.write(json.dumps(v.astype(np.float32).tolist()) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
