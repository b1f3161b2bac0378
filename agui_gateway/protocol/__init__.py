"""The AG-UI protocol library: the official client's apply (reducer), its pre-apply
stages (chunks, compat, schema) and compaction. Pure functions over event dicts, no
I/O, and nothing of the rest of the package: other Python AG-UI projects can import
this room on its own.
"""

from agui_gateway.protocol.compaction import SnapshotCompactor, compact_events, compact_to_snapshots
from agui_gateway.protocol.reducer import Reducer

__all__ = ["Reducer", "SnapshotCompactor", "compact_events", "compact_to_snapshots"]
