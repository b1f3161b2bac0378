"""Thread stores: one interface (:mod:`.base`), several backends.

``FileStore`` (:mod:`.file`) is the embedded default; ``RedisStore``
(:mod:`agui_gateway.store.redis`) serves several gateway replicas and is
imported from its module so that the file store does not load redis-py.
"""

from agui_gateway.store.base import (
    LEGACY_EPOCH,
    Checkpoint,
    Deletion,
    IdlePage,
    IdleThread,
    InvalidRecord,
    InvalidThreadId,
    NewEvent,
    SeqConflict,
    StoredRecord,
    StoreError,
    StoreUnavailable,
    ThreadDeleted,
    ThreadExists,
    ThreadHead,
    ThreadImport,
    ThreadInfo,
    ThreadStore,
    UnencodableEvent,
    validate_thread_id,
)
from agui_gateway.store.file import FileStore, FileStoreStats, FsyncPolicy

__all__ = [
    "LEGACY_EPOCH",
    "Checkpoint",
    "Deletion",
    "FileStore",
    "FileStoreStats",
    "FsyncPolicy",
    "IdlePage",
    "IdleThread",
    "InvalidRecord",
    "InvalidThreadId",
    "NewEvent",
    "SeqConflict",
    "StoreError",
    "StoreUnavailable",
    "StoredRecord",
    "ThreadDeleted",
    "ThreadExists",
    "ThreadHead",
    "ThreadImport",
    "ThreadInfo",
    "ThreadStore",
    "UnencodableEvent",
    "validate_thread_id",
]
