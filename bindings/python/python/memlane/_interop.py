"""Moving memories between stores: LanceDB, Chroma and JSONL in and out of memlane."""

from __future__ import annotations

import os
from typing import Any, Dict, List, Mapping, Optional, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from . import _memlane
from ._store import Embedder, PathLike, Store, create

_META_RESERVED = {"id", "content"}


def import_lancedb(
    table: Any,
    uri: PathLike,
    space: _memlane.Space,
    *,
    id_column: str = "id",
    text_column: str = "text",
    vector_column: str = "vector",
    plain: bool = True,
) -> Store:
    """Copy a LanceDB table (``lancedb.table.Table``, or anything with ``to_arrow()``)
    into a new memlane store at ``uri``: ``id_column`` → ``id``, ``text_column`` →
    ``content``, ``vector_column`` → the vectors of ``space``; other columns become
    metadata fields. Vectors are validated against ``space`` (dimension, NaN, zero)."""
    t = table.to_arrow() if hasattr(table, "to_arrow") else pa.table(table)
    missing = [c for c in (id_column, vector_column) if c not in t.column_names]
    if missing:
        raise _memlane.InvalidInputError(
            f"the table has no column(s) {missing}; its columns are {t.column_names}: "
            "pass id_column= / vector_column= / text_column="
        )
    names = []
    for c in t.column_names:
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
) -> Store:
    """Copy a Chroma collection (``chromadb`` ``Collection``, e.g. from a
    ``PersistentClient``) into a new memlane store: ids, documents → ``content``,
    embeddings → ``space`` (default: a space named after the collection with the
    embeddings' dimension), metadata keys → typed metadata fields."""
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
        raise _memlane.InvalidInputError(f"Chroma collection `{collection.name}` is empty; nothing to import")
    mat = np.concatenate(vecs) if vecs else None
    if mat is None or mat.shape[0] != len(ids):
        raise _memlane.InvalidInputError(
            f"Chroma collection `{collection.name}` returned no embeddings for some records; "
            "memlane needs the stored vectors (or create the store without them and re-embed)"
        )
    if space is None:
        name = "".join(ch if ch.isalnum() else "_" for ch in str(collection.name).lower()).strip("_") or "chroma"
        space = _memlane.Space(name, int(mat.shape[1]), provider="chroma", model=str(collection.name))
    cols: Dict[str, Any] = {"id": pa.array(ids, pa.string()), "content": pa.array(docs, pa.string())}
    keys = sorted({k for m in metas for k in m} - _META_RESERVED)
    for k in keys:
        cols[k] = pa.array([m.get(k) for m in metas])
    cols[space.column] = pa.FixedSizeListArray.from_arrays(pa.array(mat.ravel()), mat.shape[1])
    return create(uri, [space], data=pa.table(cols), plain=plain)


def to_chroma(store: Store, collection: Any, space: Optional[str] = None, *, batch: int = 5000) -> int:
    """Write a store's records (ids, content, the vectors of ``space``, scalar metadata)
    into a Chroma collection; returns the records written."""
    sp = store._space(space)
    t = store.to_arrow()
    t = t.filter(pc.is_valid(t.column(sp.column)))
    scalar = [
        f.name
        for f in t.schema
        if f.name not in ("id", "content")
        and not f.name.startswith("vec_")
        and (pa.types.is_integer(f.type) or pa.types.is_floating(f.type) or pa.types.is_string(f.type) or pa.types.is_boolean(f.type))
    ]
    n = 0
    for off in range(0, t.num_rows, batch):
        part = t.slice(off, batch)
        vec = part.column(sp.column).combine_chunks().flatten().to_numpy(zero_copy_only=False)
        metas = [{k: v for k, v in row.items() if v is not None} or None for row in part.select(scalar).to_pylist()]
        collection.add(
            ids=part.column("id").to_pylist(),
            embeddings=vec.reshape(-1, sp.dimension).astype(np.float32),
            documents=part.column("content").to_pylist(),
            metadatas=metas if scalar else None,
        )
        n += part.num_rows
    return n


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
    )
    return Store(native)


def export_jsonl(store: Store, path: PathLike) -> int:
    """Write a store's live rows to JSONL (vectors included); returns the rows written."""
    return store.export(path)
