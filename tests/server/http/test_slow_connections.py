"""Slow and idle connections, on a real ``agui-gateway serve`` process and real sockets.

* Under a descriptor limit of 1,024, 1,100 connections that never finish their request
  head do not keep ``/healthz`` from answering within 1 s; every one of them is closed
  by the request deadline (or gives its place to a newer connection), and the process's
  descriptors return to their baseline. Nothing fails for want of descriptors.
* A body that arrives slowly, but within the deadline, is received whole; one that
  stalls gets a 408 and its connection closed.
* The deadline starts again with each request on a kept-alive connection, and an idle
  kept-alive connection is closed after the keep-alive limit.
* At the cap, with every connection busy, a new connection is refused at once (503).
"""

from __future__ import annotations

import resource
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import orjson
import pytest
from click.testing import CliRunner
from support.servers import GatewayProcess
from support.waiting import wait_until

from agui_gateway.cli.serve import build_config, serve
from agui_gateway.server.config import ConfigError, GatewayConfig, load_config

SLOW_HEAD = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: "  # never finished


def _limit_nofile(limit: int) -> None:
    resource.setrlimit(resource.RLIMIT_NOFILE, (limit, limit))


@contextmanager
def _sockets() -> Iterator[list[socket.socket]]:
    held: list[socket.socket] = []
    try:
        yield held
    finally:
        for sock in held:
            sock.close()


def _connect(port: int, first_bytes: bytes = b"") -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    if first_bytes:
        sock.sendall(first_bytes)
    return sock


def _read_to_close(sock: socket.socket, timeout: float) -> bytes:
    """Everything the server sends until it closes the connection (a reset counts as closed)."""
    sock.settimeout(timeout)
    received = b""
    try:
        while chunk := sock.recv(65536):
            received += chunk
    except ConnectionResetError:
        pass
    return received


def _status(response: bytes) -> int:
    return int(response.split(b" ", 2)[1])


def _request(method: str, path: str, body: bytes = b"", **headers: str) -> tuple[bytes, bytes]:
    head = f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
    if body:
        head += f"content-type: application/json\r\ncontent-length: {len(body)}\r\n"
    head += "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    return (head + "\r\n").encode(), body


def _read_response(sock: socket.socket, timeout: float = 10) -> bytes:
    """One response with a Content-Length, read off a connection that stays open."""
    sock.settimeout(timeout)
    received = b""
    while b"\r\n\r\n" not in received:
        chunk = sock.recv(65536)
        assert chunk, f"closed before a whole head: {received!r}"
        received += chunk
    head, _, body = received.partition(b"\r\n\r\n")
    length = next(
        int(line.split(b":")[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length")
    )
    while len(body) < length:
        chunk = sock.recv(65536)
        assert chunk, "closed mid-body"
        body += chunk
    return head + b"\r\n\r\n" + body


def test_slow_heads_under_1024_descriptors_leave_healthz_answering_and_are_closed(tmp_path: Path) -> None:
    gw = GatewayProcess(tmp_path / "data", {}, "--request-timeout", "2", preexec=lambda: _limit_nofile(1024))
    with gw, _sockets() as slow:
        baseline = gw.open_fds()
        for _ in range(1100):
            slow.append(_connect(gw.port, SLOW_HEAD))
        # The figure: /healthz answers within 1 s while they are all held or queued.
        assert httpx.get(gw.url + "/healthz", timeout=1).status_code == 200
        # Each one is closed: by the deadline with a 408, or earlier with a 503 to make room
        # for a newer one (the cap is below 1,024, so both happen).
        statuses = {_status(_read_to_close(sock, timeout=30)) for sock in slow}
        assert statuses == {408, 503}
        closed = sum(
            gw.metric(f'agui_gateway_connections_closed_total{{reason="{reason}"}}')
            for reason in ("request_timeout", "replaced", "refused")
        )
        assert closed >= 1100
        wait_until(lambda: gw.open_fds() <= baseline, 30, what="descriptors back to their baseline")
        log = gw.log_path.read_text()
        assert "Too many open files" not in log and "out of system resource" not in log


def test_a_slow_body_within_the_deadline_is_received_whole(tmp_path: Path) -> None:
    args = ("--demo", "--demo-pace", "0", "--request-timeout", "4", "--keep-alive-timeout", "0.5")
    with GatewayProcess(tmp_path / "data", {}, *args) as gw:
        run = {"threadId": "slow", "runId": "r1", "messages": [], "tools": [], "context": [], "state": {}}
        head, body = _request("POST", "/agents/demo/run", orjson.dumps(run))
        sock = _connect(gw.port, head)
        try:
            pieces = [body[i : i + 8] for i in range(0, len(body), 8)]
            pace = 2.0 / len(pieces)  # 2 s in all: longer than the keep-alive limit, within the deadline
            for piece in pieces:
                time.sleep(pace)  # wait-ok: the client's upload pace, not a synchronisation
                sock.sendall(piece)
            stream = b""
            sock.settimeout(30)
            while b"RUN_FINISHED" not in stream:
                chunk = sock.recv(65536)
                assert chunk, f"closed before the run finished: {stream[-300:]!r}"
                stream += chunk
            assert _status(stream) == 200
        finally:
            sock.close()


def test_a_stalled_body_gets_408_and_the_connection_closed(tmp_path: Path) -> None:
    with GatewayProcess(tmp_path / "data", {}, "--demo", "--request-timeout", "1") as gw:
        run = {"threadId": "stalled", "runId": "r1", "messages": [], "tools": [], "context": [], "state": {}}
        head, body = _request("POST", "/agents/demo/run", orjson.dumps(run))
        sock = _connect(gw.port, head + body[:-5])
        try:
            response = _read_to_close(sock, timeout=30)
        finally:
            sock.close()
        assert _status(response) == 408
        assert orjson.loads(response.partition(b"\r\n\r\n")[2])["code"] == "request_timeout"
        assert gw.metric('agui_gateway_connections_closed_total{reason="request_timeout"}') == 1
        # The run never started: nothing of the thread was stored.
        log = httpx.get(gw.url + "/threads/stalled/log.jsonl", timeout=10)
        assert log.status_code == 200 and log.content == b""
        # The request the deadline cut off is no failure of the gateway's.
        assert "Traceback" not in gw.log_path.read_text()


def test_the_deadline_restarts_with_each_request_and_idle_connections_close(tmp_path: Path) -> None:
    args = ("--request-timeout", "3", "--keep-alive-timeout", "30")
    with GatewayProcess(tmp_path / "data", {}, *args) as gw:
        sock = _connect(gw.port)
        try:
            head, _ = _request("GET", "/healthz")
            sock.sendall(head)
            assert _status(_read_response(sock)) == 200
            # Idle for 2 s, then a head sent over 2 s: 4 s after the first request's start,
            # more than the deadline, but 2 s after this request's first byte.
            time.sleep(2)  # wait-ok: the client's idle time between requests, not a synchronisation
            for i in range(0, len(head), 4):
                sock.sendall(head[i : i + 4])
                time.sleep(2 * 4 / len(head))  # wait-ok: the client's upload pace
            assert _status(_read_response(sock)) == 200
        finally:
            sock.close()
    with GatewayProcess(tmp_path / "data", {}, "--keep-alive-timeout", "0.5") as gw:
        sock = _connect(gw.port)
        try:
            head, _ = _request("GET", "/healthz")
            sock.sendall(head)
            assert _status(_read_response(sock)) == 200
            assert _read_to_close(sock, timeout=30) == b""  # the server closes the idle connection
        finally:
            sock.close()


def test_at_the_cap_with_every_connection_busy_a_new_one_is_refused_at_once(tmp_path: Path) -> None:
    thread = {"threadId": "t", "runId": "c", "messages": [], "tools": [], "context": [], "state": {}}
    with GatewayProcess(tmp_path / "data", {}, "--demo", "--max-connections", "3") as gw, _sockets() as busy:
        head, body = _request("POST", "/agents/demo/run", orjson.dumps(thread))
        # Three event streams (requests in progress) fill the cap.
        for i in range(3):
            watcher, _ = _request("GET", f"/threads/busy-{i}/events")
            busy.append(_connect(gw.port, watcher))
        for sock in busy:
            sock.settimeout(10)
            assert _status(sock.recv(4096)) == 200
        refused = _read_to_close(_connect(gw.port, head + body), timeout=10)
        assert _status(refused) == 503
        assert b"retry-after:" in refused.lower()
        assert orjson.loads(refused.partition(b"\r\n\r\n")[2])["code"] == "too_many_connections"
        busy.pop().close()
        # Its place is free again: the next connection is served.
        wait_until(lambda: _healthz_answers(gw), 10, what="a connection accepted below the cap")


def _healthz_answers(gw: GatewayProcess) -> bool:
    try:
        return httpx.get(gw.url + "/healthz", timeout=5).status_code == 200
    except httpx.HTTPError:
        return False


def test_the_connection_settings_from_file_environment_and_flags(tmp_path: Path) -> None:
    defaults = GatewayConfig()
    assert (defaults.request_timeout_s, defaults.keep_alive_timeout_s, defaults.max_connections) == (30.0, 5.0, None)
    path = tmp_path / "gateway.toml"
    path.write_text("request_timeout = 10\nkeep_alive_timeout = 20\nmax_connections = 500\n")
    env = {"AGUI_GATEWAY_REQUEST_TIMEOUT": "12.5", "AGUI_GATEWAY_MAX_CONNECTIONS": "600"}
    from_env = load_config(path, env)
    assert (from_env.request_timeout_s, from_env.keep_alive_timeout_s, from_env.max_connections) == (12.5, 20.0, 600)
    # (build_config reads os.environ: none of these variables there)
    from_flags = build_config(config_file=path, request_timeout=3, keep_alive_timeout=0.5)
    assert (from_flags.request_timeout_s, from_flags.keep_alive_timeout_s, from_flags.max_connections) == (3, 0.5, 500)
    result = CliRunner().invoke(
        serve, ["--config", str(path), "--max-connections", "0", "--data", str(tmp_path / "d")], env=env
    )
    assert result.exit_code == 2 and "max_connections: must be at least 1" in result.output
    with pytest.raises(ConfigError, match="request_timeout: expected a number"):
        load_config(None, {"AGUI_GATEWAY_REQUEST_TIMEOUT": "soon"})


def test_bytes_between_requests_do_not_hold_a_connection_open(tmp_path: Path) -> None:
    """Empty lines between requests are no request (the parser skips them), but any data
    used to stop uvicorn's keep-alive clock: the deadline runs for them instead."""
    args = ("--request-timeout", "1", "--keep-alive-timeout", "0.5")
    with GatewayProcess(tmp_path / "data", {}, *args) as gw:
        sock = _connect(gw.port)
        try:
            head, _ = _request("GET", "/healthz")
            sock.sendall(head)
            assert _status(_read_response(sock)) == 200
            sock.settimeout(0.2)
            closed = False
            for _ in range(100):  # 20 s at most
                try:
                    sock.sendall(b"\r\n")
                    closed = sock.recv(4096) == b""  # the pace: this read's timeout, 0.2 s
                except TimeoutError:
                    continue
                except OSError:
                    closed = True
                if closed:
                    break
            assert closed
        finally:
            sock.close()
