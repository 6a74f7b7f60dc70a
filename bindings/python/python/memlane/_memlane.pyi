"""Type stubs of memlane's native module (checked by ``python -m mypy.stubtest``)."""

import os
from typing import Any, Callable, Dict, List, Mapping, Optional, Tuple, Union, final

__version__: str

# Every attribute exists on every instance: None where the error does not carry it.
class MemlaneError(Exception): ...
class MigrationError(MemlaneError):
    file: Optional[str]

class ChecksumMismatch(MigrationError): ...

class IntegrityError(MigrationError):
    version: Optional[int]

class InvariantViolation(MigrationError):
    step: Optional[int]
    report: Optional[Dict[str, Any]]

class GateBlocked(MigrationError):
    check: Optional[Dict[str, Any]]

class ReviewRequired(GateBlocked): ...

class EmbedderError(MigrationError):
    embedder: Optional[str]
    batch: Optional[int]
    record_id: Optional[str]
    fragment: Optional[int]
    attempts: Optional[int]
    worker: Optional[str]

class IncompatibleSpaceError(MemlaneError):
    record_id: Optional[str]
    space: Optional[str]
    expected: Optional[int]
    got: Optional[int]
    query_space: Optional[str]

class ModelDrift(IncompatibleSpaceError):
    embedder: Optional[str]
    cosine: Optional[float]
    canary: Optional[str]

class LockHeld(MemlaneError):
    holder: Optional[str]
    host: Optional[str]
    pid: Optional[int]
    uri: Optional[str]

class NotFoundError(MemlaneError):
    uri: Optional[str]
    version: Optional[str]

class StoreExistsError(MemlaneError):
    uri: Optional[str]

class InvalidInputError(MemlaneError): ...
class ConflictError(MemlaneError): ...
class StateError(MemlaneError): ...
class StorageError(MemlaneError): ...
class InternalError(MemlaneError): ...

@final
class Embedder:
    def __new__(cls, spec: str, *, timeout: Optional[float] = None) -> Embedder: ...
    @staticmethod
    def from_config(path: Union[str, os.PathLike[str]], *, timeout: Optional[float] = None) -> Dict[str, Embedder]: ...
    def __call__(self, texts: List[str]) -> Any: ...
    @property
    def batch_size(self) -> int: ...
    @property
    def calls(self) -> Optional[Dict[str, Optional[int]]]: ...

@final
class Space:
    def __new__(
        cls,
        name: str,
        dimension: int,
        *,
        provider: str = "",
        model: str = "",
        revision: str = "",
        metric: str = "cosine",
        normalized: bool = False,
        query_prefix: str = "",
        passage_prefix: str = "",
        column: Optional[str] = None,
        embedder: Optional[str] = None,
    ) -> "Space": ...
    @staticmethod
    def parse(spec: str) -> "Space": ...
    @staticmethod
    def from_json(s: str) -> "Space": ...
    @property
    def name(self) -> str: ...
    @property
    def dimension(self) -> int: ...
    @property
    def provider(self) -> str: ...
    @property
    def model(self) -> str: ...
    @property
    def revision(self) -> str: ...
    @property
    def metric(self) -> str: ...
    @property
    def normalized(self) -> bool: ...
    @property
    def column(self) -> str: ...
    @property
    def query_prefix(self) -> str: ...
    @property
    def passage_prefix(self) -> str: ...
    @property
    def embedder(self) -> Optional[str]: ...
    @property
    def has_fingerprint(self) -> bool: ...
    def identity(self) -> str: ...
    def to_json(self) -> str: ...
    def __eq__(self, value: object, /) -> bool: ...

@final
class Store:
    @property
    def uri(self) -> str: ...
    @property
    def version(self) -> int: ...
    @property
    def active_space(self) -> Optional[str]: ...
    def refresh(self) -> None: ...
    def count(self) -> int: ...
    def status_json(self) -> Tuple[str, str]: ...
    def spaces(self) -> List[Space]: ...
    def add(self, data: Any, embedders: Optional[Dict[str, Any]] = None, registry: Optional[Dict[str, Any]] = None) -> str: ...
    def upsert(
        self, data: Any, embedders: Optional[Dict[str, Any]] = None, registry: Optional[Dict[str, Any]] = None
    ) -> str: ...
    def query_vector(
        self, text: str, space: Optional[str] = None, registry: Optional[Dict[str, Any]] = None
    ) -> List[float]: ...
    def set_embedder(
        self, space: str, reference: Optional[str], registry: Optional[Dict[str, Any]] = None
    ) -> int: ...
    def update(
        self,
        filter: str,
        values: str,
        embedders: Optional[Dict[str, Any]] = None,
        registry: Optional[Dict[str, Any]] = None,
    ) -> str: ...
    def delete(self, predicate: str) -> Tuple[int, int]: ...
    def to_arrow_capsule(self, columns: Optional[List[str]] = None, filter: Optional[str] = None) -> object: ...
    def search(
        self,
        vector: bytes,
        k: int = 10,
        space: Optional[str] = None,
        filter: Optional[str] = None,
        query_space: Optional[str] = None,
        *,
        exact: bool = False,
        nprobes: Optional[int] = None,
        refine_factor: Optional[int] = None,
        columns: Optional[List[str]] = None,
    ) -> Tuple[str, Optional[object]]: ...
    def coverage(self, space: Optional[str] = None) -> Tuple[int, int]: ...
    def plan_json(self, migrations: str) -> Tuple[str, str]: ...
    def apply_json(
        self,
        migrations: str,
        embedders: Optional[Dict[str, Any]] = None,
        *,
        progress: Optional[Callable[[Dict[str, Any]], None]] = None,
        dry_run: bool = False,
        approve: Optional[str] = None,
        to: Optional[int] = None,
    ) -> Tuple[str, str]: ...
    def history_json(self) -> str: ...
    def verify_json(self, migrations: Optional[str] = None) -> Tuple[str, str]: ...
    def validate_json(self, migrations: Optional[str] = None, against: Optional[int] = None) -> Tuple[str, str]: ...
    def validate_history_json(self) -> str: ...
    def tag(self, name: str, version: Optional[int] = None) -> int: ...
    def tags(self) -> List[Tuple[str, int]]: ...
    def branch(self, name: str, at: Optional[int] = None) -> Store: ...
    def branches_json(self) -> str: ...
    def delete_branch(self, name: str) -> None: ...
    def promote_json(self, name: str, *, keep: bool = False) -> Tuple[str, str]: ...
    def user_fields(self) -> List[str]: ...
    def create_index(self, space: Optional[str], spec: str) -> int: ...
    def rehearse_json(
        self,
        migrations: str,
        embedders: Optional[Mapping[str, Any]] = None,
        *,
        sample: Optional[int] = None,
        keep: bool = False,
        name: Optional[str] = None,
        approve: Optional[str] = None,
        to: Optional[int] = None,
    ) -> Tuple[str, str]: ...
    def restore(self, to: str, reason: str) -> int: ...
    def abort(self, reason: str) -> int: ...
    def contract(self, space: str, reason: str) -> int: ...
    def compat_json(self, old: str, new: str, *, sample: int = 2000, k: int = 10) -> Tuple[str, str]: ...
    def export(self, path: str) -> int: ...
    def export_sample_json(
        self,
        path: str,
        rows: int = 2000,
        migrations: Optional[str] = None,
        embedders: Optional[Mapping[str, Callable[[List[str]], Any]]] = None,
    ) -> str: ...

def review_json(sample: str, migrations: str, *, k: int = 10) -> Tuple[str, str]: ...
def create(
    uri: str,
    spaces: Optional[List[Space]] = None,
    *,
    plain: bool = False,
    data: Any = None,
    embedders: Optional[Dict[str, Any]] = None,
    rows_per_fragment: Optional[int] = None,
    storage_options: Optional[Dict[str, str]] = None,
    registry: Optional[Dict[str, Any]] = None,
) -> Store: ...
def create_from_jsonl(
    uri: str,
    path: str,
    spaces: Optional[List[Space]] = None,
    *,
    plain: bool = False,
    embedders: Optional[Dict[str, Any]] = None,
    storage_options: Optional[Dict[str, str]] = None,
    registry: Optional[Dict[str, Any]] = None,
) -> Store: ...
def open(uri: str, *, storage_options: Optional[Dict[str, str]] = None) -> Store: ...
def bundle_json(
    uri: str,
    output: Union[str, os.PathLike[str]],
    *,
    key: Optional[str] = None,
    storage_options: Optional[Mapping[str, str]] = None,
) -> str: ...
def unbundle_json(
    path: Union[str, os.PathLike[str]],
    dest: str,
    *,
    key: Optional[str] = None,
    storage_options: Optional[Mapping[str, str]] = None,
) -> str: ...
def diff_json(
    a: str, b: str, *, storage_options: Optional[Mapping[str, str]] = None
) -> Tuple[str, str]: ...
def unlock_json(
    uri: str, *, even_if_alive: bool = False, storage_options: Optional[Dict[str, str]] = None
) -> Optional[str]: ...
def read_migrations(folder: str) -> str: ...
def run_fragment_task_json(
    task: str, embedder: Callable[[List[str]], Any], *, worker: Optional[str] = None
) -> str:
    """Run one fragment task of a distributed re-embed in this process (a worker): read,
    embed, check, write the columns, stage the result; returns the result as JSON."""
    ...
def compat_json(
    old: bytes,
    old_dim: int,
    new: bytes,
    new_dim: int,
    *,
    k: int = 10,
    metric: str = "cosine",
    queries: Optional[Tuple[bytes, bytes, List[List[int]]]] = None,
) -> Tuple[str, str]: ...
