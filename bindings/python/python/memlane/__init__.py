"""memlane: versioned, verified migrations for vector stores and AI-agent memory, on Lance.

    import memlane, numpy as np
    store = memlane.create("/tmp/mem", spaces=[memlane.Space("old", 256)],
                           data=[{"id": "m1", "content": "likes tea"}], embedders={"old": old_model})
    print(store.plan("migrations/"))                      # a Plan; renders in Jupyter
    report = store.apply("migrations/", embedders={"e5": new_model}, progress=True)
    hits = store.search(new_model(["what does the user drink?"])[0], k=5)

Embedders are plain callables ``f(list[str]) -> numpy.ndarray`` of shape (n, dimension),
float32 (anything numpy can convert). They are called in batches (``f.batch_size`` if set,
else 64) with the GIL held only while they run. Models can be passed as they are
(sentence-transformers, fastembed, LanceDB embedding functions;
``memlane.embedder(openai_client, model=...)``), and so can memlane's own embedders:
``"http:URL,model=NAME"`` (an OpenAI-compatible server, with batching, concurrency,
retries and rate limits), ``"proc:python serve.py"`` (one long-lived model process), or
the ``[embedders.NAME]`` tables of a ``memlane.toml`` (``memlane.load_embedders``; the
migrations folder's own is read by ``apply``).
"""

from __future__ import annotations

from ._memlane import (
    ChecksumMismatch,
    ConflictError,
    Embedder,
    EmbedderError,
    GateBlocked,
    IncompatibleSpaceError,
    IntegrityError,
    InternalError,
    InvalidInputError,
    InvariantViolation,
    LockHeld,
    MemlaneError,
    MigrationError,
    ModelDrift,
    NotFoundError,
    ReviewRequired,
    Space,
    StateError,
    StorageError,
    StoreExistsError,
    __version__,
)
# The documented attributes of each exception exist on every instance (None where an
# error does not carry one), as the stub declares them.
for _cls, _names in (
    (MigrationError, ("file",)),
    (IntegrityError, ("version",)),
    (InvariantViolation, ("step", "report")),
    (GateBlocked, ("check",)),
    (EmbedderError, ("embedder", "batch", "record_id", "fragment", "attempts", "worker")),
    (IncompatibleSpaceError, ("record_id", "space", "expected", "got", "query_space")),
    (ModelDrift, ("embedder", "cosine", "canary")),
    (LockHeld, ("holder", "host", "pid", "uri")),
    (NotFoundError, ("uri", "version")),
    (StoreExistsError, ("uri",)),
):
    for _n in _names:
        if not hasattr(_cls, _n):
            setattr(_cls, _n, None)

from ._reports import (  # noqa: E402
    ApplyReport,
    CompatReport,
    History,
    Hit,
    Plan,
    PromoteReport,
    Rehearsal,
    Report,
    Review,
    Status,
    StoreDiff,
    ValidateReport,
    VerifyReport,
)
from ._query import Query
from ._store import Hits, Store, bundle, compat, create, diff, open, review, unbundle, unlock
from ._embedders import embedder, load_embedders, register_embedder
from ._interop import ExportReport, export_jsonl, import_chroma, import_jsonl, import_lancedb, to_chroma

__all__ = [
    "ApplyReport",
    "ChecksumMismatch",
    "ConflictError",
    "InternalError",
    "StateError",
    "StorageError",
    "IntegrityError",
    "CompatReport",
    "Embedder",
    "EmbedderError",
    "embedder",
    "load_embedders",
    "register_embedder",
    "GateBlocked",
    "History",
    "Hit",
    "Hits",
    "Query",
    "IncompatibleSpaceError",
    "InvalidInputError",
    "InvariantViolation",
    "LockHeld",
    "MemlaneError",
    "MigrationError",
    "ModelDrift",
    "NotFoundError",
    "Plan",
    "PromoteReport",
    "Rehearsal",
    "Report",
    "Review",
    "ReviewRequired",
    "Space",
    "Status",
    "StoreDiff",
    "diff",
    "bundle",
    "unbundle",
    "Store",
    "StoreExistsError",
    "ValidateReport",
    "VerifyReport",
    "__version__",
    "compat",
    "create",
    "export_jsonl",
    "import_chroma",
    "import_jsonl",
    "import_lancedb",
    "open",
    "review",
    "to_chroma",
    "ExportReport",
    "unlock",
]
