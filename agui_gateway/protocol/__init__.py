"""The AG-UI protocol library: the official client's apply (reducer), its pre-apply
stages (chunks, compat, schema) and compaction. Pure functions over event dicts, no
I/O, and nothing of the rest of the package: other Python AG-UI projects can import
this room on its own.

Beside those: ``types`` (the event and message aliases, the sentinels, the client's
SSE frame limit), ``events`` (event type names), ``js`` (the JavaScript semantics the
ports rely on) and ``builders`` (the run events the gateway writes itself).
"""

from agui_gateway.protocol.compaction import SnapshotCompactor, compact_events, compact_to_snapshots
from agui_gateway.protocol.reducer import Reducer

__all__ = ["Reducer", "SnapshotCompactor", "compact_events", "compact_to_snapshots"]
