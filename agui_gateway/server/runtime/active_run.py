"""The record of one run in progress, shared by the run manager and the thread it runs on.

:class:`~.manager.RunManager` creates it and :class:`~.run_task.RunTask` drives it; the
thread's :class:`~.thread.ThreadRuntime` holds it while the run is open (``admit`` /
``dismiss``). Its life: admitted, then driven; ``end_stored`` once its terminal event
is in the log; ``released`` once it has let go of the thread (lease and claim) and
``final_seq`` is set.
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
    start_after: int = 0  # the caller's stream is the log after this seq
    plan: RunPlan | None = None  # what the run's first RUN_STARTED record still has to carry
    current_run_id: str = ""  # envelope runId for the events being stored
    stop_reason: tuple[str, str] | None = None  # (message, code) when stopped
    # Stopped on a client's request (here, or on another replica through the lease): the
    # run ends with AG-UI 1.0's cancelled outcome, not a RUN_ERROR (which is for faults).
    cancelled: bool = False
    end_stored: bool = False  # its terminal event is stored: it only lets go of the thread now
    final_seq: int | None = None  # the seq of the run's last event, set when it is released
    released: asyncio.Event = field(default_factory=asyncio.Event)  # it let go of the thread
    task: asyncio.Task[None] | None = None  # the writer: stores items, then the run's end
    reader: asyncio.Task[None] | None = None  # pulls the agent's stream
    lease: Lease | None = None  # the thread's run lease (stores shared by replicas)
    keeper: asyncio.Task[None] | None = None  # renews the lease (runtime/leases.py)

    @property
    def fence(self) -> int | None:
        """The fencing token every append of the run carries (None: a store without leases)."""
        return self.lease.token if self.lease is not None else None

    @property
    def is_released(self) -> bool:
        return self.released.is_set()
