"""The Python face of a memlane store: Arrow and numpy in, reports and Arrow out."""

from __future__ import annotations

import datetime
import json
import os
import warnings
from typing import Any, Callable, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from . import _embedders, _memlane
from ._query import Hits, Query
from ._reports import (
    ApplyReport,
    CompatReport,
    History,
    Hit,
    Plan,
    PromoteReport,
    Rehearsal,
    Review,
    StoreDiff,
    Status,
    ValidateReport,
    VerifyReport,
)

# a function list[str] -> array (n, d); a model object, a spec string or a memlane.Embedder
# (adapted by memlane._embedders.adapt)
Embedder = Union[Callable[[List[str]], Any], str, Any]
"""A callable ``f(list[str]) -> array (n, dimension)``; ``f.batch_size`` sets its batch."""

PathLike = Union[str, "os.PathLike[str]"]


def _arrow(data: Any) -> Any:
    """Anything tabular as an object with ``__arrow_c_stream__``."""
    if isinstance(data, pa.RecordBatch):
        return pa.Table.from_batches([data])
    if hasattr(data, "__arrow_c_stream__"):
        return data
    if isinstance(data, Mapping):
        return pa.table({k: _column(v) for k, v in data.items()})
    if isinstance(data, (list, tuple)):
        if not data:
            raise _memlane.InvalidInputError("no records given; pass a non-empty list of dicts")
        return pa.Table.from_pylist([_row(r) for r in data])
    try:  # pandas before 2.2, without the capsule interface
        import pandas as pd  # type: ignore[import-untyped]

        if isinstance(data, pd.DataFrame):
            return pa.Table.from_pandas(data, preserve_index=False)
    except ImportError:  # pragma: no cover
        pass
    raise _memlane.InvalidInputError(
        f"cannot read records from {type(data).__name__}; pass a pyarrow Table or RecordBatch, "
        "a polars or pandas DataFrame, a dict of columns, or a list of dicts"
    )


def _column(v: Any) -> Any:
    """A 2-D numpy array becomes a fixed-size list column (vectors); the rest as given."""
    if isinstance(v, np.ndarray) and v.ndim == 2:
        flat = pa.array(np.ascontiguousarray(v, dtype=np.float32).ravel())
        return pa.FixedSizeListArray.from_arrays(flat, v.shape[1])
    return v


def _row(r: Any) -> Dict[str, Any]:
    if not isinstance(r, Mapping):
        raise _memlane.InvalidInputError(f"records must be dicts, got {type(r).__name__}")
    return {k: (v.astype(np.float32).tolist() if isinstance(v, np.ndarray) else v) for k, v in r.items()}


def _check_k(k: Any, name: str = "k") -> None:
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)):
        raise _memlane.InvalidInputError(f"{name} must be an int (the number of results), got {type(k).__name__} {k!r}")
    if k < 1:
        raise _memlane.InvalidInputError(f"{name} (the number of results) must be at least 1, got {k}")


def _vector(v: Any) -> bytes:
    a = np.ascontiguousarray(v, dtype=np.float32)
    if a.ndim == 2 and a.shape[0] == 1:
        a = a[0]
    if a.ndim != 1:
        raise _memlane.InvalidInputError(
            f"a query vector must be 1-D, got shape {a.shape}; pass one vector, e.g. embed([q])[0]"
        )
    return a.tobytes()


def _matrix(v: Any, what: str) -> Tuple[bytes, int]:
    a = np.ascontiguousarray(v, dtype=np.float32)
    if a.ndim != 2:
        raise _memlane.InvalidInputError(f"`{what}` must be a 2-D array (n, dimension), got shape {a.shape}")
    return a.tobytes(), int(a.shape[1])


class _Tqdm:
    """Progress through tqdm, one bar per step."""

    def __init__(self) -> None:
        try:  # notebook bars need ipywidgets; without it tqdm.auto would warn on every bar
            import ipywidgets  # type: ignore[import-untyped]  # noqa: F401

            from tqdm.auto import tqdm  # type: ignore[import-untyped]
        except ImportError:
            from tqdm import tqdm  # type: ignore[import-untyped]

        self._tqdm = tqdm
        self._bar: Any = None
        self._key: Any = None

    def __call__(self, p: Dict[str, Any]) -> None:
        if p.get("phase") in ("start", "blocked"):
            return
        if p.get("phase") == "committed":
            self.close()
            return
        sample = p.get("phase") in ("sample", "compat")
        key = (p["migration"], p["step"], sample)
        if key != self._key:
            self.close()
            self._key = key
            desc = f"{p['migration']:04d} step {p['step'] + 1}/{p['steps']} {p['op']}" + (" (compat sample)" if sample else "")
            # a resumed or catching-up step starts where it is: rows done before this run
            # are not counted into the rate
            self._bar = self._tqdm(total=p["total"] or None, desc=desc, unit="rows", initial=p["done"])
        if self._bar is not None:
            if p["total"] and self._bar.total != p["total"]:
                self._bar.total = p["total"]
            self._bar.n = p["done"]
            post = {}
            if p.get("workers"):
                post["workers"] = len(p["workers"])
            if p.get("conflicts"):
                post["conflicts"] = p["conflicts"]
            if p.get("retries"):
                post["retries"] = p["retries"]
            if p.get("requests"):
                post["requests"] = p["requests"]
            if p.get("request_retries"):
                post["retried"] = p["request_retries"]
            if p.get("restarts"):
                post["restarts"] = p["restarts"]
            if p.get("tokens"):
                post["tokens"] = p["tokens"]
            if post:
                self._bar.set_postfix(post, refresh=False)
            self._bar.refresh()

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None


def _progress(progress: Union[bool, Callable[[Dict[str, Any]], None], None]) -> Any:
    if progress is True:
        try:
            return _Tqdm()
        except ImportError:
            return None
    if callable(progress):
        return progress
    return None


class Store:
    """A memlane store: one Lance dataset with embedding spaces and a migration history.

    Open one with :func:`memlane.open` or make one with :func:`memlane.create`. Every
    method releases the GIL while Rust works; embedders are called back with it held.
    """

    def __init__(self, native: _memlane.Store) -> None:
        self._s = native
        # embedders this handle was given for its spaces (see use_embedder)
        self._embedders: Dict[str, Any] = {}

    # -- identity ------------------------------------------------------------------
    @property
    def uri(self) -> str:
        """Where the store lives."""
        return self._s.uri

    @property
    def version(self) -> int:
        """Lance version this handle reads."""
        return self._s.version

    @property
    def active_space(self) -> Optional[str]:
        """The space searched by default."""
        return self._s.active_space

    @property
    def spaces(self) -> List[_memlane.Space]:
        """Embedding spaces of the store."""
        return self._s.spaces()

    def refresh(self) -> "Store":
        """Read the latest version (other processes may have committed)."""
        self._s.refresh()
        return self

    def __len__(self) -> int:
        return self._s.count()

    def __repr__(self) -> str:
        return f"memlane.Store({self.uri!r}, version={self.version}, active_space={self.active_space!r})"

    # -- embedders ------------------------------------------------------------------
    def use_embedder(self, space: str, embedder: Union[Embedder, str], *, name: Optional[str] = None) -> "Store":
        """Give ``space`` its embedder: :meth:`add` and :meth:`upsert` embed records
        without a vector with it, and :meth:`search` takes text.

        With a **name** (a string: one given to :func:`memlane.register_embedder`, a
        built-in such as ``"hash384v2"``, or a spec that runs nothing local,
        ``"hash:384"`` / ``"http:URL,model=NAME"``), or with a model and ``name=`` (which
        registers it under that name), the **store remembers it**: a later session that
        registers the same name adds and searches text without being told the model.
        Before it is kept, the embedder must reproduce the space's canary fingerprint and
        the stored vectors of a few of its records (:class:`InvalidInputError` names the
        record otherwise). With a model alone it serves this handle only."""
        sp = self._space(space)
        if name is not None:
            # registered for the process only once the store has accepted the model
            registry = {**_embedders.registry(), name: _embedders.adapt(embedder, name)}
            self._s.set_embedder(sp.name, name, registry)
            _embedders.register_embedder(name, registry[name])
            self._embedders.pop(sp.name, None)
            return self
        if isinstance(embedder, str) and not _is_local_spec(embedder):
            self._s.set_embedder(sp.name, embedder, _embedders.registry())
            self._embedders.pop(sp.name, None)
            return self
        self._embedders[sp.name] = _embedders.adapt(embedder, sp.name)
        return self

    def forget_embedder(self, space: str) -> "Store":
        """Forget the embedder ``space`` remembers (a commit) and the one this handle
        was given for it."""
        sp = self._space(space)
        self._s.set_embedder(sp.name, None, _embedders.registry())
        self._embedders.pop(sp.name, None)
        return self

    def _with_defaults(self, embedders: Optional[Mapping[str, Embedder]]) -> Dict[str, Any]:
        return {**self._embedders, **dict(embedders or {})}

    def _embed_query(self, text: str, sp: _memlane.Space, embedder: Optional[Embedder]) -> np.ndarray:
        e = embedder if embedder is not None else self._embedders.get(sp.name)
        if e is None and sp.embedder is not None:
            # the library resolves what the space remembers (registry, spec, built-in)
            return np.asarray(self._s.query_vector(text, sp.name, _embedders.registry()), dtype=np.float32)
        if e is None:
            raise _memlane.InvalidInputError(
                f"search got text ({text[:40]!r}) but has no embedder for space `{sp.name}`: pass embedder=model, "
                f"call store.use_embedder({sp.name!r}, model) once (with name=... the store remembers it), "
                f"or pass a query vector of dimension {sp.dimension}"
            )
        f = _embedders.adapt(e, sp.name)
        out = f([sp.query_prefix + text])
        if out is None:
            raise _memlane.InvalidInputError(f"the embedder for space `{sp.name}` returned None for the query; return an array (1, {sp.dimension})")
        return np.asarray(out, dtype=np.float32).reshape(-1)

    # -- data ----------------------------------------------------------------------
    def add(self, data: Any, embedders: Optional[Mapping[str, Embedder]] = None) -> Dict[str, Any]:
        """Add records: a pyarrow Table/RecordBatch, anything with ``__arrow_c_stream__``
        (polars, pandas >= 2.2), a dict of columns or a list of dicts. Vectors go under
        the space name or its column; rows without one get it from ``embedders[space]``
        (or the embedder :meth:`use_embedder` gave the space).
        Everything is validated first: on error nothing is written."""
        return json.loads(self._s.add(_arrow(data), self._with_defaults(embedders), _embedders.registry()))

    def upsert(self, data: Any, embedders: Optional[Mapping[str, Embedder]] = None) -> Dict[str, Any]:
        """Insert or replace records by id (same inputs as :meth:`add`)."""
        return json.loads(self._s.upsert(_arrow(data), self._with_defaults(embedders), _embedders.registry()))

    def delete(self, where: str) -> int:
        """Delete the records matching a SQL predicate over the store's fields (e.g.
        ``"agent_id = 'a1' AND kind = 'message'"``); returns the rows deleted. A commit
        preempted by a running migration is retried, never raised."""
        n, _version = self._s.delete(where)
        return int(n)

    def to_arrow(self, columns: Optional[Sequence[str]] = None, filter: Optional[str] = None) -> pa.Table:
        """Live rows as a pyarrow Table (every field, or ``columns``; ``filter`` in SQL).
        memlane's internal digest columns (``vec_<space>__src``) are left out unless
        named in ``columns``."""
        if isinstance(columns, str):
            columns = [columns]
        cols = list(columns) if columns is not None else self._s.user_fields()
        cap = self._s.to_arrow_capsule(cols, filter)
        return pa.RecordBatchReader.from_stream(_Capsule(cap)).read_all()

    def vectors(self, space: Optional[str] = None, filter: Optional[str] = None) -> Tuple[List[str], np.ndarray]:
        """(ids, float32 array (n, dimension)) of the rows that have a vector in ``space``."""
        sp = self._space(space)
        t = self.to_arrow(["id", sp.column], filter)
        col = t.column(sp.column)
        keep = pc.is_valid(col)
        t = t.filter(keep)
        col = t.column(sp.column).combine_chunks()
        flat = col.flatten().to_numpy(zero_copy_only=False).astype(np.float32, copy=False)
        return t.column("id").to_pylist(), flat.reshape(-1, sp.dimension)

    def search(
        self,
        vector: Any,
        k: int = 10,
        space: Optional[str] = None,
        filter: Optional[str] = None,
        query_space: Optional[str] = None,
        adapter: Optional[str] = None,
        exact: bool = False,
        nprobes: Optional[int] = None,
        refine_factor: Optional[int] = None,
        embedder: Optional[Embedder] = None,
    ) -> Query:
        """The ``k`` nearest records to ``vector`` in ``space`` (the active one by
        default), as a lazy :class:`Query`: a list of :class:`Hit` when used as one, or
        refined LanceDB-style (``.where(sql).select([...]).limit(k).to_pandas()``).

        ``vector`` may be text when the space has an embedder (``embedder=``, or
        :meth:`use_embedder`); the space's query prefix is added. ``query_space`` (alias
        ``adapter``): the space whose model embedded the query; it is mapped into
        ``space`` through the adapter a re-embed stored for the pair, so the old space
        answers new-model queries during and after a migration. A space with a vector
        index (``create_index``, or one LanceDB built with the space's metric) is searched
        through it (``nprobes``/``refine_factor`` override; ``exact=True`` scans every
        vector); ``.index`` says which index answered (``None``: an exact scan)."""
        qs = query_space or adapter
        if isinstance(vector, str):
            vector = self._embed_query(vector, self._space(qs or space), embedder)
        params = dict(k=k, space=space, filter=filter, query_space=qs, exact=exact, nprobes=nprobes, refine_factor=refine_factor)
        _check_k(k)
        return Query(self, _vector(vector), params)

    def _search_now(
        self,
        vector: bytes,
        *,
        k: int,
        space: Optional[str],
        filter: Optional[str],
        query_space: Optional[str],
        exact: bool,
        nprobes: Optional[int],
        refine_factor: Optional[int],
        columns: Optional[List[str]] = None,
    ) -> Tuple[Hits, Optional[pa.Table]]:
        """The hits and, when ``columns`` names fields, their rows (``id``, the fields,
        ``_distance``) read by the same scan."""
        _check_k(k)
        raw, cap = self._s.search(
            vector, k, space, filter, query_space, exact=exact, nprobes=nprobes, refine_factor=refine_factor, columns=columns
        )
        found = json.loads(raw)
        hits = Hits(
            [Hit(h["id"], h.get("content"), float(h["distance"])) for h in found["hits"]],
            found.get("index"),
            found.get("fallback"),
        )
        rows = None if cap is None else pa.RecordBatchReader.from_stream(_Capsule(cap)).read_all()
        return hits, rows

    # -- LanceDB-shaped reads and writes -----------------------------------------------
    def create_index(
        self,
        space: Optional[str] = None,
        *,
        kind: str = "ivf_pq",
        partitions: Optional[int] = None,
        sub_vectors: Optional[int] = None,
        bits: Optional[int] = None,
        m: Optional[int] = None,
        ef_construction: Optional[int] = None,
        nprobes: Optional[int] = None,
        refine_factor: Optional[int] = None,
        ef: Optional[int] = None,
        min_recall: Optional[float] = None,
    ) -> int:
        """Build a vector index on ``space`` (the active one by default): ``kind`` is
        ``"ivf_pq"``, ``"ivf_hnsw_sq"`` or ``"ivf_flat"``, with the parameters of a
        ``create_index`` migration step. Its recall against exact search is proven on
        the built index before it lands (at least ``min_recall``, 0.9 by default; below
        it nothing lands, a :class:`StateError` names the recall). Searches then use it.
        Returns the new version."""
        params = dict(
            kind=kind, partitions=partitions, sub_vectors=sub_vectors, bits=bits, m=m, ef_construction=ef_construction,
            nprobes=nprobes, refine_factor=refine_factor, ef=ef, min_recall=min_recall,
        )
        spec = {k: v for k, v in params.items() if v is not None}
        return int(self._s.create_index(space, json.dumps(spec)))

    @property
    def schema(self) -> pa.Schema:
        """The store's fields (memlane's internal digest columns left out)."""
        return self.to_arrow(filter="false").schema

    def count_rows(self, filter: Optional[str] = None) -> int:
        """Live rows (matching ``filter``, SQL, when given)."""
        if filter is None:
            return int(self._s.count())
        return int(self.to_arrow(["id"], filter).num_rows)

    def head(self, n: int = 5, columns: Optional[Sequence[str]] = None) -> pa.Table:
        """The first ``n`` live rows."""
        _check_k(n, "n")
        return self.to_arrow(columns).slice(0, n)

    def to_pandas(self, columns: Optional[Sequence[str]] = None, filter: Optional[str] = None) -> Any:
        """Live rows as a pandas DataFrame (as :meth:`to_arrow`)."""
        return self.to_arrow(columns, filter).to_pandas()

    def to_polars(self, columns: Optional[Sequence[str]] = None, filter: Optional[str] = None) -> Any:
        """Live rows as a polars DataFrame (as :meth:`to_arrow`)."""
        import polars as pl  # noqa: PLC0415 - optional dependency

        return pl.from_arrow(self.to_arrow(columns, filter))

    def update(
        self,
        where: str,
        values: Mapping[str, Any],
        embedders: Optional[Mapping[str, Embedder]] = None,
    ) -> int:
        """Set fields of the records matching ``where`` (SQL) to ``values`` (a value per
        field, as LanceDB's ``update(where=..., values=...)``); returns the records
        updated. Vectors and ``id`` are not set this way. Changing ``content``
        re-embeds the record in every space (with ``embedders``, the ones
        :meth:`use_embedder` gave, or the spaces' remembered embedders): its old vectors
        would no longer match it. One upsert: on error nothing is written."""
        if not isinstance(values, Mapping):
            raise _memlane.InvalidInputError("update() takes values={field: value, ...} with at least one field")
        raw = self._s.update(where, json.dumps(dict(values), default=_json_value), self._with_defaults(embedders), _embedders.registry())
        return int(json.loads(raw)["updated"])

    def coverage(self, space: Optional[str] = None) -> Tuple[int, int]:
        """(rows with a vector in ``space``, live rows)."""
        return self._s.coverage(space)

    def export(self, path: PathLike) -> int:
        """Write the live rows to ``.jsonl`` or Arrow IPC (``.arrow``); returns the rows written."""
        return self._s.export(os.fspath(path))

    def export_sample(
        self,
        path: PathLike,
        rows: int = 2000,
        migrations: Optional[PathLike] = None,
        embedders: Optional[Mapping[str, Embedder]] = None,
    ) -> Dict[str, Any]:
        """Write a review sample (Arrow IPC) for the browser preview or :func:`review`: up to
        ``rows`` records spread over the store with every space's vectors and the store's
        snapshot; for each pending re-embed of ``migrations`` whose embedder is in
        ``embedders`` (by the step's embedder name), the new space's vectors of the sampled
        rows. The store is only read. Returns what the sample holds."""
        return json.loads(
            self._s.export_sample_json(
                os.fspath(path),
                rows,
                None if migrations is None else os.fspath(migrations),
                None if embedders is None else dict(embedders),
            )
        )

    # -- migrations ----------------------------------------------------------------
    def plan(self, migrations: PathLike) -> Plan:
        """What applying a migrations folder would do: steps, lint findings, embedders
        needed. Raises :class:`ChecksumMismatch` if applied files were edited."""
        raw, text = self._s.plan_json(os.fspath(migrations))
        return Plan(json.loads(raw), text)

    def apply(
        self,
        migrations: PathLike,
        embedders: Optional[Mapping[str, Embedder]] = None,
        progress: Union[bool, Callable[[Dict[str, Any]], None], None] = True,
        dry_run: bool = False,
        approve: Optional[str] = None,
        to: Optional[int] = None,
    ) -> ApplyReport:
        """Apply the pending migrations of a folder.

        ``embedders`` maps the embedder names the files use to callables. ``progress``:
        True for a tqdm bar (when tqdm is installed), a callable receiving a dict, or
        False. ``dry_run`` stages and checks every step and commits nothing. ``approve``
        gives the reason that lets a gate verdict of "review" go ahead. A failed or
        interrupted apply leaves the store at its last committed step; calling ``apply``
        again resumes there."""
        cb = _progress(progress)
        try:
            raw, text = self._s.apply_json(
                os.fspath(migrations),
                # migrations name their embedders: registered names serve them too
                {**_embedders.registry(), **dict(embedders or {})},
                progress=cb,
                dry_run=dry_run,
                approve=approve,
                to=to,
            )
        finally:
            if isinstance(cb, _Tqdm):
                cb.close()
        return ApplyReport(json.loads(raw), text)

    def status(self) -> Status:
        """Version, rows, spaces, applied and in-flight migrations, re-embed progress, lock."""
        raw, text = self._s.status_json()
        return Status(json.loads(raw), text)

    def history(self) -> History:
        """Every version with what memlane recorded in its commit."""
        return History(json.loads(self._s.history_json()))

    def verify(self, migrations: Optional[PathLike] = None) -> VerifyReport:
        """Check the recorded state against the data (and a folder's hash chain)."""
        raw, text = self._s.verify_json(os.fspath(migrations) if migrations else None)
        return VerifyReport(json.loads(raw), text)

    def validate(self, migrations: Optional[PathLike] = None, against: Optional[int] = None) -> ValidateReport:
        """Run every built-in data check (ids unique, vectors of every space, references,
        lifecycle, ids preserved and content unchanged against ``against`` — default the
        previous version) plus the folder's ``invariants.toml``. Lists every failure with
        sample ids; ``report.ok`` is False when a ``fail`` check failed."""
        raw, text = self._s.validate_json(os.fspath(migrations) if migrations else None, against)
        return ValidateReport(json.loads(raw), text)

    def validate_history(self) -> List[Dict[str, Any]]:
        """Every check over versions: step invariants from history and kept validations."""
        return json.loads(self._s.validate_history_json())

    def compat(self, old: str, new: str, sample: int = 2000, k: int = 10) -> CompatReport:
        """Compatibility of two spaces of this store on a paired sample of rows."""
        raw, text = self._s.compat_json(old, new, sample=sample, k=k)
        return CompatReport(json.loads(raw), text)

    def tag(self, name: str, version: Optional[int] = None) -> int:
        """Tag a version (the current one by default)."""
        return self._s.tag(name, version)

    def tags(self) -> List[Tuple[str, int]]:
        """(tag, version) pairs."""
        return self._s.tags()

    def branch(self, name: str, at: Optional[int] = None) -> "Store":
        """A zero-copy branch of the store (at version ``at``, default the latest),
        beside it at ``<store>.branches/<name>``: a store of its own, for rehearsing
        migrations. Nothing inside this store is written."""
        return Store(self._s.branch(name, at))

    def branches(self) -> List[Dict[str, Any]]:
        """The store's branches: name, uri, from_version, created_at, version, applied."""
        return json.loads(self._s.branches_json())

    def delete_branch(self, name: str) -> None:
        """Delete a branch."""
        self._s.delete_branch(name)

    def promote(self, name: str, *, keep: bool = False) -> PromoteReport:
        """Make branch ``name``'s commits this store's (a rehearsed migration, without
        calling its models again): they are replayed onto the store, which must not have
        moved since the branch point, and the branch is deleted unless ``keep``. A killed
        promote is finished by calling it again."""
        raw, text = self._s.promote_json(name, keep=keep)
        return PromoteReport(json.loads(raw), text)

    def rehearse(
        self,
        migrations: PathLike,
        embedders: Optional[Mapping[str, Embedder]] = None,
        *,
        sample: Optional[int] = None,
        keep: bool = False,
        name: Optional[str] = None,
        approve: Optional[str] = None,
        to: Optional[int] = None,
    ) -> Rehearsal:
        """Apply the folder's pending migrations for real on a branch (cut to ``sample``
        evenly spread rows when given, with the duration and embedder cost extrapolated),
        report, and delete the branch unless ``keep``. This store is not changed."""
        raw, text = self._s.rehearse_json(
            os.fspath(migrations), {**_embedders.registry(), **dict(embedders or {})}, sample=sample, keep=keep, name=name, approve=approve, to=to
        )
        return Rehearsal(json.loads(raw), text)

    def restore(self, to: Union[int, str], reason: str) -> int:
        """Commit a new version equal to an old one (version or tag): forward only."""
        return self._s.restore(str(to), reason)

    def abort(self, reason: str) -> int:
        """Abort the in-flight re-embed (only before it completes)."""
        return self._s.abort(reason)

    def contract(self, space: str, reason: str) -> int:
        """Drop an inactive space's vectors once a re-embed has completed."""
        return self._s.contract(space, reason)

    def _space(self, name: Optional[str]) -> _memlane.Space:
        name = name or self.active_space
        for s in self.spaces:
            if s.name == name:
                return s
        known = ", ".join(s.name for s in self.spaces) or "none"
        raise _memlane.IncompatibleSpaceError(f"space `{name}` does not exist in this store (spaces: {known})")


class _Capsule:
    """Hands a native Arrow stream capsule to pyarrow through the PyCapsule interface."""

    def __init__(self, capsule: object) -> None:
        self._c = capsule

    def __arrow_c_stream__(self, requested_schema: object = None) -> object:
        return self._c


def _json_value(v: Any) -> Any:
    """A value ``json`` cannot write as itself: times as RFC 3339, numpy scalars and
    arrays as Python numbers and lists."""
    if isinstance(v, (datetime.datetime, datetime.date)):
        if isinstance(v, datetime.datetime) and v.tzinfo is None:
            v = v.replace(tzinfo=datetime.timezone.utc)
        return v.isoformat()
    if isinstance(v, (np.generic, np.ndarray)):
        return v.tolist()
    raise _memlane.InvalidInputError(f"update: {type(v).__name__} value {v!r} is not a field value (number, string, bool, time, list, None)")


def _is_local_spec(s: str) -> bool:
    """A spec that runs a local command: used on this handle, never kept in the store."""
    return s.startswith(("cmd:", "proc:"))


def create(
    uri: PathLike,
    spaces: Optional[Iterable[_memlane.Space]] = None,
    data: Any = None,
    embedders: Optional[Mapping[str, Embedder]] = None,
    plain: bool = False,
    rows_per_fragment: Optional[int] = None,
    storage_options: Optional[Mapping[str, str]] = None,
) -> Store:
    """Create a store at ``uri`` (a local path, ``file://``, ``s3://``, ``gs://`` or
    ``az://``) with ``spaces`` (the first is active) and optional initial records (see
    :meth:`Store.add`); extra columns become metadata fields. ``embedders[space]`` fills
    missing vectors and records the space's fingerprint. ``storage_options`` reach the
    object store, with the keys pylance and lancedb take (``aws_endpoint``,
    ``aws_region``, ``allow_http``, ``aws_access_key_id``, ...)."""
    native = _memlane.create(
        os.fspath(uri),
        list(spaces or []),
        plain=plain,
        data=_arrow(data) if data is not None else None,
        embedders=dict(embedders or {}),
        rows_per_fragment=rows_per_fragment,
        storage_options=_options(storage_options),
        registry=_embedders.registry(),
    )
    return Store(native)


def open(  # noqa: A001 - mirrors lance.dataset / builtins style
    uri: PathLike, storage_options: Optional[Mapping[str, str]] = None
) -> Store:
    """Open the store at ``uri`` (``storage_options`` as for :func:`create`)."""
    return Store(_memlane.open(os.fspath(uri), storage_options=_options(storage_options)))


def unlock(
    uri: PathLike,
    even_if_alive: bool = False,
    storage_options: Optional[Mapping[str, str]] = None,
) -> Optional[Dict[str, Any]]:
    """Remove the migration lock of a dead holder (``memlane unlock --force``); returns
    the removed lock, or ``None`` when none was held. A holder alive on this host is
    refused (:class:`LockHeld`) unless ``even_if_alive``."""
    removed = _memlane.unlock_json(
        os.fspath(uri), even_if_alive=even_if_alive, storage_options=_options(storage_options)
    )
    return None if removed is None else json.loads(removed)


def _options(options: Optional[Mapping[str, str]]) -> Optional[Dict[str, str]]:
    return None if options is None else {str(k): str(v) for k, v in options.items()}


def compat(
    old: Any,
    new: Any,
    k: int = 10,
    queries: Optional[Tuple[Any, Any, Sequence[Sequence[int]]]] = None,
    metric: str = "cosine",
) -> CompatReport:
    """Compatibility of two embeddings of the same records: ``old`` (n, d_old) and ``new``
    (n, d_new), row i of each being record i. ``queries``: optional (old query vectors,
    new query vectors, relevant row indices per query) for retrieval recall and a
    query-trained adapter. Neighbourhood overlap and recall@k come with shuffled-pairing
    baselines; CKA, Procrustes and the adapter fit are included. Adapters are judged on
    retrieval (the queries when given, else held-out rows as their own queries); the
    ``adapter.*`` metrics (``adapter.retention``: share of the old model's hits kept, in
    [0, 1]) describe the chosen adapter and are absent when none was chosen."""
    ob, od = _matrix(old, "old")
    nb, nd = _matrix(new, "new")
    q = None
    if queries is not None:
        qo, qn, rel = queries
        q = (_matrix(qo, "queries[0]")[0], _matrix(qn, "queries[1]")[0], [list(map(int, r)) for r in rel])
    raw, text = _memlane.compat_json(ob, od, nb, nd, k=k, metric=metric, queries=q)
    return CompatReport(json.loads(raw), text)


def review(sample: PathLike, migrations: PathLike, *, k: int = 10) -> Review:
    """Review a folder's pending migrations on a sample written by
    :meth:`Store.export_sample` (or ``memlane export-sample``): plan and lint, each
    re-embed's compatibility check with its mode and gates, invariants on the sample, and
    an overall verdict — the browser preview's answer, computed by the same code."""
    raw, text = _memlane.review_json(os.fspath(sample), os.fspath(migrations), k=k)
    return Review(json.loads(raw), text)


def diff(a: Union[Store, PathLike], b: Union[Store, PathLike], *, storage_options: Optional[Mapping[str, str]] = None) -> StoreDiff:
    """Compare two stores (dev and prod, a store and a branch) as the state they carry:
    applied migrations, schema, spaces (identity, fingerprints, the same records' vectors,
    drift), rows per kind and scope, records only on one side or changed."""
    ua = a.uri if isinstance(a, Store) else os.fspath(a)
    ub = b.uri if isinstance(b, Store) else os.fspath(b)
    raw, text = _memlane.diff_json(ua, ub, storage_options=dict(storage_options) if storage_options else None)
    return StoreDiff(json.loads(raw), text)


def bundle(
    store: Union[Store, PathLike],
    output: PathLike,
    *,
    key: Optional[str] = None,
    storage_options: Optional[Mapping[str, str]] = None,
) -> Dict[str, Any]:
    """Write a store (every version, its history, tags, indexes, adapters) to one file with
    a manifest of blake3 digests; encrypted when ``key`` (64 hex characters) is given.
    Returns the manifest (store, version, files with their bytes and blake3)."""
    uri = store.uri if isinstance(store, Store) else os.fspath(store)
    return json.loads(
        _memlane.bundle_json(uri, os.fspath(output), key=key, storage_options=dict(storage_options) if storage_options else None)
    )


def unbundle(
    path: PathLike,
    dest: PathLike,
    *,
    key: Optional[str] = None,
    storage_options: Optional[Mapping[str, str]] = None,
) -> Store:
    """Restore a bundle into a new store at ``dest`` after checking every digest (a changed
    or cut bundle raises :class:`IntegrityError` naming the part; nothing is written)."""
    opts = dict(storage_options) if storage_options else None
    _memlane.unbundle_json(os.fspath(path), os.fspath(dest), key=key, storage_options=opts)
    return open(dest, storage_options=opts)
