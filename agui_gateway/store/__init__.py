"""Thread stores: one interface (:mod:`.base`), several backends.

``FileStore`` (:mod:`.file`) is the embedded default; ``RedisStore``
(:mod:`agui_gateway.store.redis`) serves several gateway replicas and is
imported from its module so that the file store does not load redis-py.
"""

from agui_gateway.store.base import (
    Checkpoint,
    InvalidThreadId,
    NewEvent,
    StoredRecord,
    StoreError,
    ThreadInfo,
    ThreadStore,
    UnencodableEvent,
    validate_thread_id,
)
from agui_gateway.store.file import FileStore, FileStoreStats, FsyncPolicy

__all__ = [
    "Checkpoint",
    "FileStore",
    "FileStoreStats",
    "FsyncPolicy",
    "InvalidThreadId",
    "NewEvent",
    "StoreError",
    "StoredRecord",
    "ThreadInfo",
    "ThreadStore",
    "UnencodableEvent",
    "validate_thread_id",
]
