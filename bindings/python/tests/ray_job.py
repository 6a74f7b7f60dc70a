"""Processes of the distributed re-embed test (test_ray.py), run as scripts so they can be
SIGKILLed: the driver (memlane.ray on the test's Ray cluster) and a concurrent writer
(memlane's public API, plus one Lance compaction). The model is defined here and shipped
to the actors by value.

    python ray_job.py driver STORE MIGRATIONS GCS_ADDRESS WORKDIR
    python ray_job.py writer STORE WORKDIR
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import sys
import time
from pathlib import Path
from typing import Dict, List, Optional

import numpy as np

OLD_DIM = 32
NEW_DIM = 64


def vector(text: str, dim: int, salt: str) -> np.ndarray:
    """A deterministic unit vector for a text: what "the model" returns for it."""
    h = hashlib.blake2b(f"{salt}:{text}".encode(), digest_size=8).digest()
    v = np.random.default_rng(int.from_bytes(h, "little")).standard_normal(dim)
    return (v / np.linalg.norm(v)).astype(np.float32)


def old_model(texts: List[str]) -> np.ndarray:
    return np.stack([vector(t, OLD_DIM, "old") for t in texts]) if texts else np.zeros((0, OLD_DIM), np.float32)


def new_model(texts: List[str]) -> np.ndarray:
    return np.stack([vector(t, NEW_DIM, "new") for t in texts]) if texts else np.zeros((0, NEW_DIM), np.float32)


class Model:
    """The new model as an actor holds it: a fixed latency per batch (a GPU's: 0.2 s, so a
    50k-row backfill on four actors lasts long enough for a kill to land), every
    text logged (to count embeddings), and a kill switch: while the file `kill-actor`
    exists, the second batch of a fragment task removes it and SIGKILLs its own
    process, so an actor dies in the middle of a fragment."""

    batch_size = 256

    def __init__(self, workdir: str) -> None:
        self.dir = Path(workdir)
        self.log = self.dir / f"embedded-{os.getpid()}.log"
        self.calls: Dict[Optional[int], int] = {}

    def __call__(self, texts: List[str]) -> np.ndarray:
        from memlane.ray import current_fragment

        flag = self.dir / "kill-actor"
        fragment = current_fragment()
        self.calls[fragment] = self.calls.get(fragment, 0) + 1
        # in the middle of a fragment: its second batch
        if fragment is not None and self.calls[fragment] == 2 and flag.exists():
            try:
                flag.unlink()
            except FileNotFoundError:
                pass
            else:
                (self.dir / "actor-killed").write_text(str(os.getpid()))
                os.kill(os.getpid(), signal.SIGKILL)
        time.sleep(0.2)
        with self.log.open("a") as f:
            for t in texts:
                f.write(json.dumps(t) + "\n")
        return new_model(texts)


def driver(store_uri: str, migrations: str, address: str, workdir: str) -> None:
    import ray

    import memlane
    from memlane.ray import RayExecutor

    ray.init(address=address, log_to_driver=False)

    def factory() -> Model:
        return Model(workdir)

    factory.__memlane_factory__ = True  # type: ignore[attr-defined]
    store = memlane.open(store_uri)
    with RayExecutor(factory, actors=4, num_gpus=1, batch_size=256) as e:
        report = store.apply(migrations, embedders={"e": e}, progress=False)
    print(json.dumps(report.data))


def writer(store_uri: str, workdir: str) -> None:
    """Writes until `stop` exists: adds, upserts of imported and written rows, deletes;
    once `phase-b` exists every write also carries the new space's vector (the new
    space may become active at any moment), before it only the old one (so the re-embed
    must catch those rows up). Once `compact-now` exists, one Lance compaction of the
    whole dataset (retried until it lands).
    Logs every write that succeeded as a JSON line; a failed write is logged as an error."""
    import lance

    import memlane

    d = Path(workdir)
    out = (d / "writes.log").open("a")
    store = memlane.open(store_uri)
    k = 0
    compacted = False
    while not (d / "stop").exists():
        k += 1
        phase_b = (d / "phase-b").exists()
        models = {"old": old_model, "new": new_model} if phase_b else {"old": old_model}
        try:
            if k % 4 == 0:
                rec = {"id": f"w-{k}", "content": f"a note the agent wrote in round {k}"}
                store.add([rec], embedders=models)
                out.write(json.dumps({"op": "put", **rec}) + "\n")
            elif k % 4 in (1, 3):
                target = f"r-{(k * 7919) % 50000}" if k % 4 == 1 else f"w-{k - 3}"
                rec = {"id": target, "content": f"memory {target} rewritten in round {k}"}
                store.upsert([rec], embedders=models)
                out.write(json.dumps({"op": "put", **rec}) + "\n")
            else:
                gone = f"w-{k - 6}"
                store.delete(f"id = '{gone}'")
                out.write(json.dumps({"op": "delete", "id": gone}) + "\n")
        except Exception as e:  # noqa: BLE001 - the test asserts there are none
            out.write(json.dumps({"error": f"{type(e).__name__}: {e}", "round": k}) + "\n")
        out.flush()
        if (d / "compact-now").exists() and not compacted and k % 5 == 0:
            try:
                lance.dataset(store_uri).optimize.compact_files(target_rows_per_fragment=6000)
                compacted = True
                out.write(json.dumps({"op": "compact"}) + "\n")
                out.flush()
            except Exception as e:  # noqa: BLE001 - preempted by a commit: try again later
                print(f"compaction preempted: {e}", file=sys.stderr)
        time.sleep(0.05)


if __name__ == "__main__":
    if sys.argv[1] == "driver":
        driver(*sys.argv[2:6])
    elif sys.argv[1] == "writer":
        writer(*sys.argv[2:4])
    else:
        raise SystemExit(f"unknown role {sys.argv[1]}")
