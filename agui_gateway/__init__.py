"""agui-gateway: a durable, compacting gateway for AG-UI agents."""

from agui_gateway.protocol.compaction import SnapshotCompactor, compact_events, compact_to_snapshots
from agui_gateway.protocol.reducer import Reducer

__all__ = ["Reducer", "SnapshotCompactor", "compact_events", "compact_to_snapshots"]
__version__ = "0.1.0"
