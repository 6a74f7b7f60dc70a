"""Moving memories between stores: LanceDB, Chroma and JSONL in and out of memlane."""

from __future__ import annotations

import json
import os
import warnings
from typing import Any, Dict, List, Mapping, NamedTuple, Optional, Sequence, Tuple

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from . import _embedders, _memlane
from ._store import Embedder, PathLike, Store, create

_META_RESERVED = {"id", "content"}

#: Chroma's distance names -> memlane's metric names (Chroma's l2 is the squared
#: Euclidean distance, as Lance's is; ``ip`` is 1 - dot product, ranked as memlane's dot).
_CHROMA_METRICS = {"l2": "l2", "cosine": "cosine", "ip": "dot"}
#: memlane's metric -> Chroma's ``space``.
_TO_CHROMA = {v: k for k, v in _CHROMA_METRICS.items()}


class ExportReport(NamedTuple):
    """What an export wrote: ``rows``; ``converted`` fields (name -> how: timestamps as
    ISO 8601 text, nested values as JSON text); ``dropped`` fields the target cannot hold
    (name -> why)."""

    rows: int
    converted: Dict[str, str]
    dropped: Dict[str, str]


def _invalid(msg: str) -> Exception:
    return _memlane.InvalidInputError(msg)


def _chroma_metric(collection: Any) -> str:
    """The metric a Chroma collection searches with (its ``hnsw``/``spann`` space, the
    legacy ``hnsw:space`` metadata key, else Chroma's default, l2), in memlane's names."""
    space = None
    conf = getattr(collection, "configuration_json", None)
    if isinstance(conf, dict):
        for key in ("hnsw", "spann"):
            sec = conf.get(key)
            if isinstance(sec, dict) and sec.get("space"):
                space = sec["space"]
                break
    meta = getattr(collection, "metadata", None) or {}
    space = space or meta.get("hnsw:space") or "l2"
    if space not in _CHROMA_METRICS:
        raise _invalid(f"Chroma collection `{collection.name}` uses distance `{space}`, which memlane has no metric for (l2, cosine, ip)")
    return _CHROMA_METRICS[space]


def _kind(v: Any) -> str:
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, int):
        return "int"
    if isinstance(v, float):
        return "float"
    if isinstance(v, str):
        return "str"
    if isinstance(v, (list, tuple)):
        return "list[" + ",".join(sorted({_kind(x) for x in v})) + "]"
    return type(v).__name__


def _metadata_columns(ids: Sequence[str], metas: Sequence[Mapping[str, Any]], coerce: bool) -> Dict[str, pa.Array]:
    """One typed column per metadata key. Integers mixed with floats become floats; any
    other mix of types is refused naming the key and a record of each type, unless
    ``coerce`` (then every value of that key is stored as text)."""
    out: Dict[str, pa.Array] = {}
    for k in sorted({k for m in metas for k in m} - _META_RESERVED):
        vals = [m.get(k) for m in metas]
        kinds: Dict[str, Tuple[str, Any]] = {}
        for i, v in zip(ids, vals):
            if v is not None:
                kinds.setdefault(_kind(v), (i, v))
        if set(kinds) == {"int", "float"}:
            vals = [None if v is None else float(v) for v in vals]
        elif len(kinds) > 1:
            if not coerce:
                seen = "; ".join(f"{kind} (record `{i}`: {v!r})" for kind, (i, v) in kinds.items())
                raise _invalid(
                    f"metadata key `{k}` holds values of {len(kinds)} types: {seen}; a memlane field has one type. "
                    f"Pass coerce=True to store every `{k}` value as text, or make the collection's values agree"
                )
            vals = [None if v is None else v if isinstance(v, str) else json.dumps(v) for v in vals]
        try:
            out[k] = pa.array(vals)
        except (pa.ArrowInvalid, pa.ArrowTypeError) as e:
            if not coerce:
                raise _invalid(f"metadata key `{k}` cannot be stored as one column ({e}); pass coerce=True to store it as text") from None
            out[k] = pa.array([None if v is None else v if isinstance(v, str) else json.dumps(v) for v in vals], pa.string())
    return out


def _lancedb_metric(table: Any, column: str) -> Optional[str]:
    """The metric of a vector index LanceDB built on ``column`` (none without one)."""
    try:
        indices = table.list_indices()
    except Exception:  # noqa: BLE001 - not a LanceDB table, or an older one
        return None
    for ix in indices:
        cols = getattr(ix, "columns", None) or []
        details = getattr(ix, "index_details", None) or {}
        metric = details.get("metric_type") if isinstance(details, dict) else None
        if column in cols and metric:
            return {"l2": "l2", "cosine": "cosine", "dot": "dot"}.get(str(metric).lower())
    return None


def _lancedb_source_column(t: pa.Table, vector_column: str) -> Optional[str]:
    """The text column a LanceDB embedding function fills ``vector_column`` from."""
    raw = (t.schema.metadata or {}).get(b"embedding_functions")
    if not raw:
        return None
    try:
        for f in json.loads(raw):
            if f.get("vector_column") == vector_column and f.get("source_column"):
                return str(f["source_column"])
    except (ValueError, AttributeError, TypeError):
        return None
    return None


_TEXT_DEFAULT = "text"


def import_lancedb(
    table: Any,
    uri: PathLike,
    space: _memlane.Space,
    *,
    id_column: str = "id",
    text_column: Optional[str] = _TEXT_DEFAULT,
    vector_column: str = "vector",
    plain: bool = True,
) -> Store:
    """Copy a LanceDB table (``lancedb.table.Table``, or anything with ``to_arrow()``)
    into a new memlane store at ``uri``: ``id_column`` → ``id``, ``text_column`` →
    ``content`` (``None``: no content), ``vector_column`` → the vectors of ``space``;
    other columns become metadata fields. When ``text_column`` is left at ``"text"`` and
    the table has none, the source column of the table's LanceDB embedding function is
    used. A vector index on the table fixes the metric: a ``space`` with another one is
    refused. Vectors are validated against ``space`` (dimension, NaN, zero)."""
    t = table.to_arrow() if hasattr(table, "to_arrow") else pa.table(table)
    cols = t.column_names
    if text_column is not None and text_column not in cols:
        guessed = _lancedb_source_column(t, vector_column) if text_column == _TEXT_DEFAULT else None
        if guessed is None or guessed not in cols:
            raise _invalid(
                f"the table has no text column `{text_column}`; its columns are {cols}: "
                "pass text_column='<the column holding the text>' (or text_column=None to import without content)"
            )
        text_column = guessed
    missing = [c for c in (id_column, vector_column) if c not in cols]
    if missing:
        raise _invalid(f"the table has no column(s) {missing}; its columns are {cols}: pass id_column= / vector_column=")
    metric = _lancedb_metric(table, vector_column)
    if metric is not None and metric != space.metric:
        raise _invalid(
            f"the table's vector index on `{vector_column}` searches by {metric}, but space `{space.name}` says {space.metric}: "
            f"pass memlane.Space(..., metric='{metric}') so searches rank the same"
        )
    names = []
    for c in cols:
        if c == id_column:
            names.append("id")
        elif c == text_column:
            names.append("content")
        elif c == vector_column:
            names.append(space.column)
        else:
            names.append(c)
    t = t.rename_columns(names)
    if t.schema.field("id").type != pa.string():
        t = t.set_column(t.schema.get_field_index("id"), "id", pc.cast(t.column("id"), pa.string()))
    return create(uri, [space], data=t, plain=plain)


def import_chroma(
    collection: Any,
    uri: PathLike,
    space: Optional[_memlane.Space] = None,
    *,
    batch: int = 5000,
    plain: bool = True,
    coerce: bool = False,
) -> Store:
    """Copy a Chroma collection (``chromadb`` ``Collection``, e.g. from a
    ``PersistentClient``) into a new memlane store: ids, documents → ``content``,
    embeddings → ``space``, metadata keys → typed metadata fields.

    The space (default: named after the collection, with the embeddings' dimension)
    takes the collection's distance (``l2`` by default in Chroma, ``cosine``, ``ip`` →
    ``dot``), so searches rank as they did; a ``space`` with another metric is refused.
    A metadata key whose values have several types is refused naming the key and a
    record of each type, unless ``coerce=True`` (stored as text)."""
    metric = _chroma_metric(collection)
    total = collection.count()
    ids: List[str] = []
    docs: List[Optional[str]] = []
    vecs: List[np.ndarray] = []
    metas: List[Dict[str, Any]] = []
    for off in range(0, max(total, 1), batch):
        got = collection.get(include=["embeddings", "documents", "metadatas"], limit=batch, offset=off)
        ids.extend(got["ids"])
        docs.extend(got.get("documents") or [None] * len(got["ids"]))
        emb = got.get("embeddings")
        if emb is not None and len(emb):
            vecs.append(np.asarray(emb, dtype=np.float32))
        metas.extend([m or {} for m in (got.get("metadatas") or [{}] * len(got["ids"]))])
    if not ids:
        raise _invalid(f"Chroma collection `{collection.name}` is empty; nothing to import")
    mat = np.concatenate(vecs) if vecs else None
    if mat is None or mat.shape[0] != len(ids):
        raise _invalid(
            f"Chroma collection `{collection.name}` returned no embeddings for some records; "
            "memlane needs the stored vectors (or create the store without them and re-embed)"
        )
    if space is None:
        name = "".join(ch if ch.isalnum() else "_" for ch in str(collection.name).lower()).strip("_") or "chroma"
        space = _memlane.Space(name, int(mat.shape[1]), provider="chroma", model=str(collection.name), metric=metric)
    elif space.metric != metric:
        raise _invalid(
            f"Chroma collection `{collection.name}` searches by {metric}, but space `{space.name}` says {space.metric}: "
            f"pass memlane.Space(..., metric='{metric}') so searches rank the same"
        )
    cols: Dict[str, Any] = {"id": pa.array(ids, pa.string()), "content": pa.array(docs, pa.string())}
    cols.update(_metadata_columns(ids, metas, coerce))
    cols[space.column] = pa.FixedSizeListArray.from_arrays(pa.array(mat.ravel()), mat.shape[1])
    return create(uri, [space], data=pa.table(cols), plain=plain)


def _chroma_value(f: pa.Field) -> Tuple[Optional[str], Optional[str]]:
    """How a field goes into Chroma metadata: (conversion, None), (None, None) as it is,
    or (None, why it is dropped)."""
    ty = f.type
    if pa.types.is_integer(ty) or pa.types.is_floating(ty) or pa.types.is_string(ty) or pa.types.is_large_string(ty) or pa.types.is_boolean(ty):
        return None, None
    if pa.types.is_timestamp(ty) or pa.types.is_date(ty):
        return "ISO 8601 text", None
    if pa.types.is_list(ty) or pa.types.is_large_list(ty) or pa.types.is_struct(ty) or pa.types.is_map(ty):
        return "JSON text", None
    return None, f"Chroma metadata holds text, numbers, booleans and lists; {ty} has no faithful form"


def _to_meta(v: Any, how: Optional[str]) -> Any:
    if v is None or how is None:
        return v
    if how == "ISO 8601 text":
        return v.isoformat()
    return json.dumps(v, default=str)


def to_chroma(store: Store, collection: Any, space: Optional[str] = None, *, batch: int = 5000) -> ExportReport:
    """Write a store's records into a Chroma collection with upsert (a second export
    updates changed records): ids, content, the vectors of ``space`` and every field
    as metadata (timestamps as ISO 8601 text, lists and structs as JSON text). Returns
    the rows written and what was converted or dropped (also warned). A collection
    searching by another metric than the space is refused."""
    sp = store._space(space)
    want = _chroma_metric(collection)
    if want != sp.metric:
        raise _invalid(
            f"Chroma collection `{collection.name}` searches by {want}, but space `{sp.name}` is {sp.metric}: create it with "
            f"configuration={{'hnsw': {{'space': '{_TO_CHROMA.get(sp.metric, sp.metric)}'}}}} so searches rank the same"
        )
    t = store.to_arrow()
    t = t.filter(pc.is_valid(t.column(sp.column)))
    converted: Dict[str, str] = {}
    dropped: Dict[str, str] = {}
    fields: List[Tuple[str, Optional[str]]] = []
    for f in t.schema:
        if f.name in ("id", "content") or f.name.startswith("vec_"):
            continue
        how, why = _chroma_value(f)
        if why is not None:
            dropped[f.name] = why
            continue
        if how is not None:
            converted[f.name] = how
        fields.append((f.name, how))
    if dropped:
        warnings.warn(f"to_chroma: fields Chroma cannot hold were left out: {dropped}", UserWarning, stacklevel=2)
    n = 0
    names = [name for name, _ in fields]
    for off in range(0, t.num_rows, batch):
        part = t.slice(off, batch)
        vec = part.column(sp.column).combine_chunks().flatten().to_numpy(zero_copy_only=False)
        rows = part.select(names).to_pylist() if names else [{} for _ in range(part.num_rows)]
        metas = [{k: _to_meta(row[k], how) for k, how in fields if row[k] is not None} or None for row in rows]
        collection.upsert(
            ids=part.column("id").to_pylist(),
            embeddings=vec.reshape(-1, sp.dimension).astype(np.float32),
            documents=part.column("content").to_pylist(),
            metadatas=metas if names else None,
        )
        n += part.num_rows
    return ExportReport(n, converted, dropped)


def import_jsonl(
    path: PathLike,
    uri: PathLike,
    spaces: Optional[Sequence[_memlane.Space]] = None,
    embedders: Optional[Mapping[str, Embedder]] = None,
    plain: bool = False,
    storage_options: Optional[Mapping[str, str]] = None,
) -> Store:
    """Create a store from a JSONL file of records, as ``memlane init --from`` does
    (``storage_options`` as for :func:`memlane.create`)."""
    native = _memlane.create_from_jsonl(
        os.fspath(uri),
        os.fspath(path),
        list(spaces or []),
        plain=plain,
        embedders=dict(embedders or {}),
        storage_options=None if storage_options is None else dict(storage_options),
        registry=_embedders.registry(),
    )
    return Store(native)


def export_jsonl(store: Store, path: PathLike) -> int:
    """Write a store's live rows to JSONL (vectors included); returns the rows written."""
    return store.export(path)
