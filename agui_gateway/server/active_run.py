"""The record of one run in progress, shared by the run manager and the thread it runs on.

:class:`~agui_gateway.server.runs.RunManager` creates and drives it; the
thread's :class:`~agui_gateway.server.threads.ThreadRuntime` holds it while the
run is open (``claim_run`` / ``release_run``). It lives in a module of its own so
that both can name it without importing each other.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from agui_gateway.protocol.lineage import RunPlan
from agui_gateway.store.lease import Lease


@dataclass(eq=False)
class ActiveRun:
    thread_id: str
    run_id: str
    agent: str
    start_after: int  # the caller's stream is the log after this seq
    plan: RunPlan | None = None  # what the run's first RUN_STARTED record still has to carry
    current_run_id: str = ""  # envelope runId for the events being stored
    stop_reason: tuple[str, str] | None = None  # (message, code) when stopped
    ended: bool = False  # its terminal event is stored: it only lets go of the thread now
    final_seq: int | None = None  # set when the run's last event is stored
    finished: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task[None] | None = None  # the writer: stores items, then the run's end
    reader: asyncio.Task[None] | None = None  # pulls the agent's stream
    lease: Lease | None = None  # the thread's run lease (stores shared by replicas)
    keeper: asyncio.Task[None] | None = None  # renews the lease (server/leases.py)

    @property
    def fence(self) -> int | None:
        """The fencing token every append of the run carries (None: a store without leases)."""
        return self.lease.token if self.lease is not None else None

    @property
    def done(self) -> bool:
        return self.finished.is_set()
