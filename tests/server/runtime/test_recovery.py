"""Recovery is consistent: a run a crash left open is closed before any read can observe it.

The gateway opens on a data directory whose log ends inside a run (the process that
ran it died). Whatever the first request is (a log export, the thread list, the runs,
a snapshot), every read already sees the run closed by the gateway's RUN_ERROR, at the
same sequence number, and ``/threads`` never reports the thread as running.
"""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest
from support.servers import serve_gateway
from support.sse import collect, has_id

from agui_gateway.server.config import GatewayConfig

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "format-v1"
CUT = 40  # records of the fixture kept: the log ends inside run r1


def crashed_data_dir(tmp_path: Path, thread_id: str) -> Path:
    data = tmp_path / "data"
    (data / "threads" / thread_id).mkdir(parents=True)
    lines = (FIXTURES / "legacy.jsonl").read_bytes().splitlines(keepends=True)[:CUT]
    (data / "threads" / thread_id / "log.jsonl").write_bytes(b"".join(lines))
    return data


@pytest.mark.parametrize("first", ["log", "threads", "runs", "snapshot"])
async def test_every_read_sees_the_crashed_run_closed_whatever_comes_first(tmp_path: Path, first: str) -> None:
    data = crashed_data_dir(tmp_path, "t")
    with serve_gateway(GatewayConfig(data_dir=data)) as gw:
        async with httpx.AsyncClient(base_url=gw.url, timeout=20) as client:
            reads = {
                "log": lambda: client.get("/threads/t/log.jsonl"),
                "threads": lambda: client.get("/threads"),
                "runs": lambda: client.get("/threads/t/runs"),
                "snapshot": lambda: client.get("/threads/t/snapshot"),
            }
            got = {first: await reads[first]()}
            for name, read in reads.items():
                got.setdefault(name, await read())
            fresh = await collect(client, "GET", "/threads/t/events", until=has_id(CUT + 1))
    records = [json.loads(line) for line in got["log"].content.splitlines()]
    assert len(records) == CUT + 1
    closing = records[-1]
    assert closing["source"] == "gateway" and closing["event"]["type"] == "RUN_ERROR"
    assert closing["event"]["code"] == "gateway_restarted"
    [listed] = got["threads"].json()["threads"]
    assert (listed["events"], listed["running"]) == (CUT + 1, False)
    assert got["snapshot"].json()["seq"] == CUT + 1 and got["snapshot"].json()["running"] is False
    runs = got["runs"].json()["runs"]
    assert [(r["runId"], r["status"], r["lastSeq"]) for r in runs] == [("r1", "error", CUT + 1)]
    assert [f.event for f in fresh if f.event is not None][-1] == closing["event"]


async def test_without_recovery_the_thread_list_reports_the_open_run(tmp_path: Path) -> None:
    """Several replicas on one store (recovery off): the open log is another replica's run."""
    data = crashed_data_dir(tmp_path, "t")
    with serve_gateway(GatewayConfig(data_dir=data, recover_open_runs=False)) as gw:
        async with httpx.AsyncClient(base_url=gw.url, timeout=20) as client:
            [listed] = (await client.get("/threads")).json()["threads"]
            exported = (await client.get("/threads/t/log.jsonl")).content
            runs = (await client.get("/threads/t/runs")).json()["runs"]
    assert listed["running"] is True and listed["events"] == CUT
    assert len(exported.splitlines()) == CUT
    assert [(r["runId"], r["status"]) for r in runs] == [("r1", "running")]


def test_fixture_is_cut_inside_a_run() -> None:
    lines = [json.loads(line) for line in (FIXTURES / "legacy.jsonl").read_bytes().splitlines()[:CUT]]
    assert lines[-1]["event"]["type"] not in ("RUN_FINISHED", "RUN_ERROR")
