"""The search a LanceDB user expects: ``store.search(text or vector)`` is a lazy query
that ``.where()``, ``.select()``, ``.limit()`` refine and ``.to_list()``,
``.to_arrow()``, ``.to_pandas()``, ``.to_polars()`` run, with each hit's fields and its
``_distance``. It is also the list of :class:`Hit` it always was (iterate, index,
``len``, ``.index``, ``.fallback``): the query runs on first use."""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING, Any, Dict, Iterator, List, Optional, Sequence, Union, overload

import pyarrow as pa

from . import _memlane
from ._reports import Hit

if TYPE_CHECKING:  # pragma: no cover
    from ._store import Store


class Hits(List[Hit]):
    """Search hits, closest first; ``index`` names the vector index kind that answered
    (``"ivf_pq"``, ``"ivf_hnsw_sq"``, ``"ivf_flat"``), ``None`` for an exact scan.
    ``fallback`` says why the space's index was not used although it should have been
    (its files are missing or unreadable; the hits then come from an exact scan)."""

    index: Optional[str]  # type: ignore[assignment]  # the attribute, not list.index
    fallback: Optional[str]

    def __init__(self, hits: List[Hit], index: Optional[str], fallback: Optional[str] = None) -> None:
        super().__init__(hits)
        self.index = index
        self.fallback = fallback


class Query(Sequence[Hit]):
    """A k-nearest-neighbour query over one space of a store (see the module docs).

    Builder methods return a new query; nothing runs until the hits are used."""

    def __init__(self, store: "Store", query: Any, params: Dict[str, Any]) -> None:
        self._store = store
        self._query = query
        self._params = dict(params)
        self._columns: Optional[List[str]] = None
        self._hits: Optional[Hits] = None
        self._rows: Optional[pa.Table] = None

    def _with(self, **changes: Any) -> "Query":
        q = Query(self._store, self._query, {**self._params, **changes})
        q._columns = self._columns
        return q

    # -- building -------------------------------------------------------------------
    def limit(self, k: int) -> "Query":
        """At most ``k`` hits."""
        return self._with(k=k)

    def where(self, filter: str, prefilter: bool = True) -> "Query":  # noqa: A002 - LanceDB's name
        """Only records matching a SQL predicate over the store's fields (combined with
        AND with an earlier one). Filters always apply before the k nearest are taken
        (``prefilter`` is accepted for LanceDB's signature)."""
        if not isinstance(filter, str) or not filter.strip():
            raise _memlane.InvalidInputError(f"where() takes a SQL predicate string, got {filter!r}")
        old = self._params.get("filter")
        return self._with(filter=filter if not old else f"({old}) AND ({filter})")

    def select(self, columns: Union[str, Sequence[str]]) -> "Query":
        """The fields ``to_list``/``to_arrow``/``to_pandas`` return (besides ``id`` and
        ``_distance``)."""
        cols = [columns] if isinstance(columns, str) else list(columns)
        q = self._with()
        q._columns = cols
        return q

    def nprobes(self, n: int) -> "Query":
        """IVF partitions to probe (a space with a vector index)."""
        return self._with(nprobes=n)

    def refine_factor(self, r: int) -> "Query":
        """Re-rank ``r * k`` index candidates by exact distance."""
        return self._with(refine_factor=r)

    def bypass_vector_index(self) -> "Query":
        """Scan every vector (exact results)."""
        return self._with(exact=True)

    # -- running --------------------------------------------------------------------
    def _run(self, columns: Optional[List[str]] = None) -> Hits:
        if self._hits is None or columns is not None:
            hits, self._rows = self._store._search_now(self._query, columns=columns, **self._params)
            if self._hits is None and hits.fallback:
                warnings.warn(hits.fallback, RuntimeWarning, stacklevel=3)
            self._hits = hits
        return self._hits

    @overload
    def __getitem__(self, i: int) -> Hit: ...
    @overload
    def __getitem__(self, i: slice) -> List[Hit]: ...
    def __getitem__(self, i: Union[int, slice]) -> Union[Hit, List[Hit]]:
        return self._run()[i]

    def __len__(self) -> int:
        return len(self._run())

    def __iter__(self) -> Iterator[Hit]:
        return iter(self._run())

    def __eq__(self, other: object) -> bool:
        return list(self._run()) == list(other) if isinstance(other, (list, Query)) else NotImplemented

    def __repr__(self) -> str:
        return f"Query({list(self._run())!r})"

    @property
    def index(self) -> Optional[str]:  # type: ignore[override]  # Sequence.index is a method
        """The vector index kind that answered (``None``: an exact scan)."""
        return self._run().index

    @property
    def fallback(self) -> Optional[str]:
        """Why the space's index was not used although it should have been."""
        return self._run().fallback

    def to_arrow(self) -> pa.Table:
        """The hits as a table: ``id``, the selected fields (default: every field but the
        vectors), ``_distance``; closest first."""
        user = self._store._s.user_fields()
        vectors = {sp.column for sp in self._store.spaces}
        cols = self._columns if self._columns is not None else [c for c in user if c not in vectors]
        # the library reads the fields with the hits, in the k-NN scan itself
        self._run(columns=[c for c in cols if c != "id"])
        assert self._rows is not None
        return self._rows

    def to_list(self) -> List[Dict[str, Any]]:
        """The hits as dicts (as :meth:`to_arrow`)."""
        return self.to_arrow().to_pylist()

    def to_pandas(self) -> Any:
        """The hits as a pandas DataFrame (as :meth:`to_arrow`)."""
        return self.to_arrow().to_pandas()

    def to_polars(self) -> Any:
        """The hits as a polars DataFrame (as :meth:`to_arrow`)."""
        import polars as pl  # noqa: PLC0415 - optional dependency

        return pl.from_arrow(self.to_arrow())
