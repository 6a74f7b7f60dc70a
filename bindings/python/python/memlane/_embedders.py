"""Models as memlane embedders, duck-typed (no model library is a dependency).

``embedders={"e5": model}`` takes, besides a function ``list[str] -> array (n, d)``:

- a ``sentence_transformers.SentenceTransformer`` (its ``encode``),
- a ``fastembed`` text model (its ``embed``, a generator of arrays),
- an ``openai.OpenAI`` client, wrapped with the model name:
  ``memlane.embedder(client, model="text-embedding-3-small")`` (it speaks to any
  OpenAI-compatible server through ``base_url``),
- a LanceDB embedding function (its ``compute_source_embeddings``),
- a spec string: ``"http:URL,model=NAME"``, ``"proc:python serve.py"``, ``"cmd:..."``,
  ``"hash:384"`` (memlane's own embedders, see ``memlane.Embedder``).

The batch size is the model's own where it has one (``batch_size`` attribute, or the
library's default for ``encode``/``embed``), and can be set with ``batch_size=``.
"""

from __future__ import annotations

from typing import Any, Callable, Dict, List, Optional

import numpy as np

from . import _memlane

# the defaults of the libraries' own batching (sentence-transformers `encode`, fastembed
# `embed`) and a request size every OpenAI-compatible server accepts
ST_BATCH = 32
FASTEMBED_BATCH = 256
OPENAI_BATCH = 256


def _module(obj: Any) -> str:
    return type(obj).__module__ or ""


def _is_sentence_transformer(obj: Any) -> bool:
    return hasattr(obj, "encode") and hasattr(obj, "get_sentence_embedding_dimension")


def _is_fastembed(obj: Any) -> bool:
    return _module(obj).startswith("fastembed") or (
        hasattr(obj, "embed") and hasattr(obj, "model_name") and not callable(obj)
    )


def _is_openai_client(obj: Any) -> bool:
    return hasattr(getattr(obj, "embeddings", None), "create")


def _is_lancedb_function(obj: Any) -> bool:
    return hasattr(obj, "compute_source_embeddings") and hasattr(obj, "ndims")


def _rows(v: Any) -> np.ndarray:
    return np.asarray(v, dtype=np.float32)


def embedder(
    obj: Any,
    *,
    model: Optional[str] = None,
    dimensions: Optional[int] = None,
    batch_size: Optional[int] = None,
) -> Any:
    """An embedder memlane can call, made from a model object, an OpenAI client (with
    ``model=``), a spec string or a function. See the module's documentation."""
    if batch_size is not None and batch_size < 1:
        raise _memlane.InvalidInputError(f"batch_size={batch_size}: give at least 1")
    if isinstance(obj, _memlane.Embedder):
        return obj
    if isinstance(obj, str):
        return _memlane.Embedder(obj)
    if _is_openai_client(obj):
        if not model:
            raise _memlane.InvalidInputError(
                "an OpenAI client needs the model name: memlane.embedder(client, model=\"text-embedding-3-small\")"
            )
        return _openai(obj, model, dimensions, batch_size or OPENAI_BATCH)
    if _is_sentence_transformer(obj):
        bs = batch_size or ST_BATCH

        def st(texts: List[str]) -> np.ndarray:
            return _rows(obj.encode(texts, batch_size=bs, convert_to_numpy=True, show_progress_bar=False))

        return _named(st, bs, obj)
    if _is_fastembed(obj):
        bs = batch_size or int(getattr(obj, "batch_size", 0) or FASTEMBED_BATCH)

        def fe(texts: List[str]) -> np.ndarray:
            return _rows(np.stack(list(obj.embed(texts, batch_size=bs))))

        return _named(fe, bs, obj)
    if _is_lancedb_function(obj):
        bs = batch_size or int(getattr(obj, "batch_size", 0) or 64)

        def ld(texts: List[str]) -> np.ndarray:
            return _rows(obj.compute_source_embeddings(texts))

        return _named(ld, bs, obj)
    if callable(obj):
        if batch_size is not None:
            return _named(lambda texts: obj(texts), batch_size, obj)
        return obj
    raise _memlane.InvalidInputError(
        f"{type(obj).__name__} is not an embedder: pass a function list[str] -> array (n, dimension), a "
        "sentence-transformers or fastembed model, memlane.embedder(openai_client, model=...), or a spec "
        "such as \"http:URL,model=NAME\""
    )


def _named(f: Callable[[List[str]], np.ndarray], batch: int, model: Any) -> Callable[[List[str]], np.ndarray]:
    f.batch_size = batch  # type: ignore[attr-defined]
    f.__qualname__ = f"memlane.embedder({type(model).__name__})"
    return f


def _openai(client: Any, model: str, dimensions: Optional[int], batch: int) -> Callable[[List[str]], np.ndarray]:
    extra = {} if dimensions is None else {"dimensions": dimensions}

    def call(texts: List[str]) -> np.ndarray:
        out: List[Any] = []
        for i in range(0, len(texts), batch):
            r = client.embeddings.create(model=model, input=texts[i : i + batch], encoding_format="float", **extra)
            out.extend(d.embedding for d in sorted(r.data, key=lambda d: d.index))
        return _rows(out)

    return _named(call, batch, client)


# models registered by name (register_embedder): what a space's remembered embedder
# resolves in, in this process
_REGISTRY: Dict[str, Any] = {}


def register_embedder(name: str, model: Any) -> None:
    """Register ``model`` under ``name`` for this process: a space that remembers
    ``name`` (``memlane.Space(..., embedder=name)``, ``store.use_embedder(space, name)``,
    or a migration whose ``reembed`` names it) embeds with it in ``add``, ``upsert`` and
    text ``search``, and a migration naming ``name`` finds it without ``embedders=``.
    ``model`` is anything :func:`embedder` adapts. Registering a name again replaces it."""
    if not isinstance(name, str) or not name or any(c.isspace() for c in name):
        raise _memlane.InvalidInputError(f"register_embedder: name {name!r} must be a non-empty string without spaces")
    _REGISTRY[name] = adapt(model, name)


def registry() -> Dict[str, Any]:
    """The models registered by name (a copy)."""
    return dict(_REGISTRY)


def adapt(obj: Any, name: str) -> Any:
    """What the binding calls for every ``embedders=`` value: models and strings become
    embedders; functions pass through. Errors name the embedder."""
    try:
        return embedder(obj)
    except _memlane.InvalidInputError as e:
        raise _memlane.InvalidInputError(f"embedder `{name}`: {e}") from None


def load_embedders(path: Any, *, timeout: Optional[float] = None) -> dict:
    """The embedders a ``memlane.toml`` declares (``[embedders.NAME]`` tables), by name;
    pass them as ``embedders=``. ``apply`` reads the migrations folder's own
    ``memlane.toml`` by itself."""
    return dict(_memlane.Embedder.from_config(path, timeout=timeout))
