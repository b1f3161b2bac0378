"""Prometheus metrics of one gateway app, in its own registry (never the global one).

A registry per app keeps two gateways in one process (tests) from sharing or
clashing counters.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST


class GatewayMetrics:
    content_type = CONTENT_TYPE_LATEST

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.events_stored = Counter(
            "agui_gateway_events_stored", "Events appended to thread logs", ["source"], registry=r
        )
        self.bytes_stored = Counter(
            "agui_gateway_bytes_stored", "Bytes of stored events (as SSE frames) appended", registry=r
        )
        self.subscribers = Gauge(
            "agui_gateway_subscribers", "Open event streams (run callers and watchers)", registry=r
        )
        self.replays = Counter(
            "agui_gateway_replays", "Event streams served, by how they started", ["kind"], registry=r
        )
        self.replay_bytes = Counter(
            "agui_gateway_replay_bytes", "Bytes of history sent before the live tail", ["kind"], registry=r
        )
        self.checkpoint_builds = Counter(
            "agui_gateway_checkpoint_builds", "Thread replay states built from checkpoint + log", registry=r
        )
        self.checkpoint_writes = Counter("agui_gateway_checkpoint_writes", "Checkpoints written", registry=r)
        self.runs_started = Counter("agui_gateway_runs_started", "Agent runs started", ["agent"], registry=r)
        self.runs_active = Gauge("agui_gateway_runs_active", "Agent runs in progress", registry=r)
        self.runs_rejected = Counter(
            "agui_gateway_runs_rejected", "Runs refused because the thread had one open", registry=r
        )
        self.upstream_errors = Counter(
            "agui_gateway_upstream_errors", "Runs the gateway ended with a RUN_ERROR", ["code"], registry=r
        )
        self.upstream_malformed = Counter(
            "agui_gateway_upstream_malformed", "Malformed upstream lines or events skipped", registry=r
        )
        self.bad_input = Counter(
            "agui_gateway_bad_input",
            "Bad input counted (malformed upstream lines, rejected agent events, refused requests)",
            ["kind"],
            registry=r,
        )
        self.events_rejected = Counter(
            "agui_gateway_events_rejected", "Agent events replaced by a stored event_rejected record", registry=r
        )
        self.streams_refused = Counter(
            "agui_gateway_streams_refused", "Event streams refused with 503 (stream caps)", ["cap"], registry=r
        )
        self.connections = Gauge("agui_gateway_connections", "Open HTTP connections", registry=r)
        self.connections_closed = Counter(
            "agui_gateway_connections_closed",
            "Connections the gateway closed: refused at the cap, replaced by a new one at the cap, "
            "or past the request deadline",
            ["reason"],
            registry=r,
        )
        self.branches = Counter(
            "agui_gateway_branches", "Runs whose caller's history did not continue the thread", registry=r
        )
        self.run_starts_waited = Counter(
            "agui_gateway_run_starts_waited",
            "Run starts that waited for an ended run or a recovery to give the thread up",
            registry=r,
        )
        self.recovered_runs = Counter(
            "agui_gateway_recovered_runs", "Runs a crash left open, closed with a RUN_ERROR", registry=r
        )
        # Store outages ridden out by runs (server/runtime/outage_buffer.py).
        self.store_outages = Counter(
            "agui_gateway_store_outages", "Store outages met by a run (one per run and outage)", registry=r
        )
        self.store_outage_runs_ended = Counter(
            "agui_gateway_store_outage_runs_ended",
            "Runs ended with a RUN_ERROR because a store outage outlasted their budget (time or bytes)",
            registry=r,
        )
        self.outage_buffered_events = Gauge(
            "agui_gateway_outage_buffered_events", "Agent events held by runs until the store answers", registry=r
        )
        self.outage_buffered_bytes = Gauge(
            "agui_gateway_outage_buffered_bytes", "Bytes of the events runs hold until the store answers", registry=r
        )

    def render(self) -> bytes:
        return generate_latest(self.registry)
