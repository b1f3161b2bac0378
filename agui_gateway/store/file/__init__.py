"""The embedded store: one append-only JSONL log per thread, checkpoints beside it."""

from agui_gateway.store.file.store import FileStore, FileStoreStats, FsyncPolicy

__all__ = ["FileStore", "FileStoreStats", "FsyncPolicy"]
