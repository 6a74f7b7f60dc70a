"""Re-embed on a Ray cluster: fragments embedded by a pool of actors, one committing driver.

Pass a :class:`RayExecutor` as the embedder of a re-embed and the backfill runs on the
cluster with the same migration file, gates, history, resume and catch-up as in one
process::

    import ray, memlane
    from memlane.ray import RayExecutor

    class E5:                       # constructed once per actor, on its GPU
        def __init__(self):
            from sentence_transformers import SentenceTransformer
            self.m = SentenceTransformer("intfloat/e5-small-v2", device="cuda")
        def __call__(self, texts):
            return self.m.encode(texts, normalize_embeddings=True)

    ray.init(address="auto")
    store = memlane.open("s3://bucket/agent", storage_options={...})
    with RayExecutor(E5, actors=8, num_gpus=1, batch_size=256) as e5:
        store.apply("migrations/", embedders={"e5": e5})

What runs where (the rules live in memlane's Rust library; this module only moves work):

- the **driver** (this process) plans each pass at a pinned version, hands out one
  fragment per task, commits the workers' results in groups as Lance
  ``DataReplacement`` transactions carrying memlane's state and history, retries a
  fragment whose worker failed or died (three tries, then the step stops naming it),
  and drops results whose fragment a concurrent writer rewrote (the next pass embeds
  those rows again);
- each **actor** builds the model once, then per task opens the store at the pinned
  version, reads the fragment's rows that need embedding, embeds them, checks every
  vector, writes the column files and stages the result (so a driver killed before
  committing it reuses the files rather than paying for the embedding again).

The driver's own embedder calls (fingerprint, the compatibility sample, rows written
after completion) go to an actor as well, so the model never loads in the driver.
"""

from __future__ import annotations

import inspect
import json
import threading
from collections import deque
from typing import Any, Callable, Deque, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from . import _memlane

__all__ = ["RayExecutor", "current_fragment", "main"]


def _ray() -> Any:
    try:
        import ray
    except ImportError as e:  # pragma: no cover - exercised without the extra only
        raise ImportError(
            "memlane.ray needs Ray: pip install 'memlane[ray]' (or pip install ray)"
        ) from e
    return ray


def _build(model: Any) -> Callable[[List[str]], Any]:
    """The embedding function of an actor: a class or factory is called once (here, in
    the actor), a callable is used as is; an object with ``encode`` (sentence-transformers)
    is called through it."""
    if inspect.isclass(model) or getattr(model, "__memlane_factory__", False):
        model = model()
    if callable(model):
        return model
    encode = getattr(model, "encode", None)
    if callable(encode):
        return encode
    raise TypeError(
        f"{type(model).__name__} is neither callable nor has encode(); give RayExecutor a "
        "function list[str] -> array (n, dimension), or a class whose instances are one"
    )


_TASK = threading.local()


def current_fragment() -> Optional[int]:
    """Inside an actor's model call: the fragment being embedded (``None`` for the
    driver's own calls: fingerprint canaries, the compatibility sample). For logging
    and fault drills."""
    return getattr(_TASK, "fragment", None)


class _Worker:
    """One actor: the model, built once; fragment tasks run through memlane's Rust code."""

    def __init__(self, model: Any, name: str) -> None:
        self._embed = _build(model)
        self._name = name

    def run(self, task: str) -> str:
        _TASK.fragment = int(json.loads(task)["fragment"])
        try:
            return _memlane.run_fragment_task_json(task, self._embed, worker=self._name)
        finally:
            _TASK.fragment = None

    def embed(self, texts: List[str]) -> np.ndarray:
        return np.ascontiguousarray(self._embed(texts), dtype=np.float32)

    def ping(self) -> str:
        return self._name


class RayExecutor:
    """An embedder whose fragments are embedded by ``actors`` Ray actors.

    ``model``: a class (or a zero-argument factory marked with
    ``fn.__memlane_factory__ = True``) constructed once in each actor, or a callable
    ``list[str] -> (n, dimension)`` array shipped to the actors as is. ``num_gpus`` and
    ``num_cpus`` are each actor's Ray resources; ``actor_options`` any other
    ``ray.remote`` options (``resources``, ``runtime_env``, ``scheduling_strategy``...).
    ``batch_size`` is the texts per model call (default: the model's ``batch_size``
    attribute, else 256). A dead actor is replaced, at most ``max_replacements`` times
    in all (default: twice the pool). ``address`` and ``init`` go to ``ray.init`` when
    this process has not joined a cluster yet.
    """

    __memlane_executor__ = True

    def __init__(
        self,
        model: Any,
        *,
        actors: int = 4,
        num_gpus: float = 0.0,
        num_cpus: float = 1.0,
        batch_size: Optional[int] = None,
        actor_options: Optional[Mapping[str, Any]] = None,
        max_replacements: Optional[int] = None,
        address: Optional[str] = None,
        init: Optional[Mapping[str, Any]] = None,
    ) -> None:
        if actors < 1:
            raise ValueError(f"actors = {actors}: give at least one actor")
        ray = _ray()
        if not ray.is_initialized():
            ray.init(address=address, **dict(init or {}))
        self._ray = ray
        self._model = model
        self.batch_size = int(batch_size or getattr(model, "batch_size", 0) or 256)
        options: Dict[str, Any] = {"num_gpus": num_gpus, "num_cpus": num_cpus}
        options.update(actor_options or {})
        self._cls = ray.remote(**options)(_Worker)
        self._lock = threading.Lock()
        self._names: List[str] = []
        self._actors: List[Any] = []
        for i in range(actors):
            self._actors.append(self._spawn(i))
        self._replacements = 2 * actors if max_replacements is None else max_replacements
        self._idle: Deque[int] = deque(range(actors))
        self._queue: Deque[Tuple[int, str]] = deque()
        self._running: Dict[Any, Tuple[int, int]] = {}
        self._turn = 0
        # fail early (a model that cannot load) rather than inside the first pass
        ray.get([a.ping.remote() for a in self._actors])

    def _spawn(self, slot: int) -> Any:
        name = f"actor-{slot}" if slot >= len(self._names) else f"{self._names[slot]}'"
        if slot >= len(self._names):
            self._names.append(name)
        else:
            self._names[slot] = name
        return self._cls.remote(self._model, name)

    # -- the embedder side: the driver's own calls go to an actor ------------------------

    def __call__(self, texts: Sequence[str]) -> np.ndarray:
        """Embed on an actor (the driver's own calls); an actor that dies meanwhile is
        replaced and the call tried on the next one, three tries in all."""
        last: Optional[BaseException] = None
        for _ in range(3):
            with self._lock:
                slot = self._turn % len(self._actors)
                self._turn += 1
                actor = self._actors[slot]
            try:
                return self._ray.get(actor.embed.remote(list(texts)))
            except self._ray.exceptions.RayActorError as e:
                last = e
                with self._lock:
                    if self._actors[slot] is actor:
                        self._respawn(slot)
        raise RuntimeError(f"the Ray actors died on three tries: {_first_line(last or RuntimeError())}")

    # -- the executor side (called by memlane's driver) -----------------------------------

    def _workers(self) -> int:
        return len(self._actors)

    def _submit(self, task: str) -> None:
        fragment = int(json.loads(task)["fragment"])
        self._queue.append((fragment, task))
        self._dispatch()

    def _dispatch(self) -> None:
        while self._idle and self._queue:
            slot = self._idle.popleft()
            fragment, task = self._queue.popleft()
            ref = self._actors[slot].run.remote(task)
            self._running[ref] = (slot, fragment)

    def _next(self, timeout: float) -> Optional[str]:
        self._dispatch()
        if not self._running:
            if self._queue:
                raise RuntimeError(
                    "every Ray actor of this RayExecutor died and its replacements are spent "
                    f"({len(self._queue)} fragment task(s) waiting); see the actors' logs"
                )
            return None
        ready, _ = self._ray.wait(list(self._running), num_returns=1, timeout=timeout)
        if not ready:
            return None
        ref = ready[0]
        slot, fragment = self._running.pop(ref)
        worker = self._names[slot]
        exc = self._ray.exceptions
        try:
            result = self._ray.get(ref)
        except exc.RayActorError as e:
            self._replace(slot)
            return self._failed(fragment, worker, f"the worker died: {_first_line(e)}")
        except exc.RayTaskError as e:
            self._idle.append(slot)
            cause = getattr(e, "cause", None) or e
            return self._failed(fragment, worker, f"{type(cause).__name__}: {_first_line(cause)}")
        self._idle.append(slot)
        self._dispatch()
        return json.dumps({"done": json.loads(result)})

    @staticmethod
    def _failed(fragment: int, worker: str, error: str) -> str:
        return json.dumps({"failed": {"fragment": fragment, "worker": worker, "error": error}})

    def _respawn(self, slot: int) -> bool:
        """A new actor in a dead one's slot, while the replacement budget lasts."""
        if self._replacements <= 0:
            return False
        self._replacements -= 1
        self._actors[slot] = self._spawn(slot)
        return True

    def _replace(self, slot: int) -> None:
        # without a replacement the pool shrinks; memlane's driver retries on the others
        if self._respawn(slot):
            self._idle.append(slot)

    def _cancel(self) -> None:
        for ref in list(self._running):
            try:
                self._ray.cancel(ref)
            except Exception:  # noqa: BLE001 - best effort: the results stay staged
                pass
        self._running.clear()
        self._queue.clear()
        self._idle = deque(range(len(self._actors)))

    # -- lifecycle ----------------------------------------------------------------------

    def actors(self) -> List[Any]:
        """The actor handles (e.g. to kill one in a fault drill)."""
        return list(self._actors)

    def shutdown(self) -> None:
        """Kill the actors (the cluster stays up)."""
        for a in self._actors:
            try:
                self._ray.kill(a)
            except Exception:  # noqa: BLE001 - already gone
                pass
        self._actors = []

    def __enter__(self) -> "RayExecutor":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.shutdown()

    def __repr__(self) -> str:
        return f"RayExecutor({len(self._actors)} actors, batch_size={self.batch_size})"


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__


def _load(spec: str) -> Any:
    """``module:attribute`` (a class, factory or callable) imported from the path."""
    import importlib

    module, _, attr = spec.partition(":")
    if not module or not attr:
        raise SystemExit(f"--embedder NAME={spec}: give MODULE:ATTRIBUTE, e.g. e5=mymodels:E5")
    obj: Any = importlib.import_module(module)
    for part in attr.split("."):
        obj = getattr(obj, part)
    return obj


def main(argv: Optional[Sequence[str]] = None) -> int:
    """``python -m memlane.ray apply STORE FOLDER --embedder NAME=MODULE:ATTR [--address ADDR]``:
    apply a migrations folder with its re-embeds backfilled on a Ray cluster."""
    import argparse
    import os
    import sys

    import memlane

    p = argparse.ArgumentParser(prog="python -m memlane.ray", description=main.__doc__)
    sub = p.add_subparsers(dest="command", required=True)
    a = sub.add_parser("apply", help="apply a migrations folder, re-embeds on the cluster")
    a.add_argument("store")
    a.add_argument("folder")
    a.add_argument("--embedder", action="append", default=[], metavar="NAME=MODULE:ATTR", required=True)
    a.add_argument("--address", default=os.environ.get("RAY_ADDRESS"), help="Ray cluster (default: RAY_ADDRESS, else a local one)")
    a.add_argument("--actors", type=int, default=4)
    a.add_argument("--num-gpus", type=float, default=0.0, help="GPUs per actor")
    a.add_argument("--num-cpus", type=float, default=1.0, help="CPUs per actor")
    a.add_argument("--batch-size", type=int, default=None)
    a.add_argument("--storage-option", action="append", default=[], metavar="KEY=VALUE")
    a.add_argument("--approve", default=None, help="reason that lets a gate's review verdict go ahead")
    a.add_argument("--json", action="store_true", help="print the report as JSON")
    args = p.parse_args(argv)
    options = dict(kv.split("=", 1) for kv in args.storage_option) or None
    store = memlane.open(args.store, storage_options=options)
    executors: Dict[str, RayExecutor] = {}
    try:
        for item in args.embedder:
            name, _, spec = item.partition("=")
            executors[name] = RayExecutor(
                _load(spec),
                actors=args.actors,
                num_gpus=args.num_gpus,
                num_cpus=args.num_cpus,
                batch_size=args.batch_size,
                address=args.address,
            )
        try:
            report = store.apply(args.folder, embedders=executors, approve=args.approve)
        except memlane.MemlaneError as e:
            print(f"error: {e}", file=sys.stderr)
            return 1
        print(json.dumps(report.data, indent=2) if args.json else report)
        return 0 if report.ok else 3
    finally:
        for e in executors.values():
            e.shutdown()


if __name__ == "__main__":
    raise SystemExit(main())
