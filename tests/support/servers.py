"""Real servers on loopback for tests.

* :func:`serve_app` runs any ASGI app (a scripted agent, the demo agent) on uvicorn
  in a thread; :func:`serve_gateway` runs the gateway app the same way, lifespan on
  (store opened and closed). Both bind a free port on 127.0.0.1 before the server
  starts, so there is no race for the port.
* :class:`GatewayProcess` runs ``agui-gateway serve`` as a child process, for
  SIGKILL and memory tests.
* :func:`refused_port` gives a URL nobody answers.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import httpx
import uvicorn
from starlette.applications import Starlette

from agui_gateway.server.app import create_app
from agui_gateway.server.config import GatewayConfig
from support.waiting import wait_until

REPO_ROOT = Path(__file__).resolve().parents[2]
LOOPBACK = "127.0.0.1"
STARTUP_DEADLINE = 10.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((LOOPBACK, 0))
        return int(sock.getsockname()[1])


@contextmanager
def _listening_socket() -> Iterator[socket.socket]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((LOOPBACK, 0))
        sock.listen(256)
        yield sock
    finally:
        sock.close()


@contextmanager
def _run_uvicorn(app: Any, sock: socket.socket, *, lifespan: Literal["on", "off"]) -> Iterator[None]:
    """uvicorn serving ``app`` on ``sock`` in a daemon thread, from started to stopped."""
    config = uvicorn.Config(app, log_level="warning", lifespan=lifespan, timeout_graceful_shutdown=2, access_log=False)
    server = uvicorn.Server(config)
    port = sock.getsockname()[1]
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True, name=f"uvicorn-{port}")
    thread.start()
    try:
        wait_until(lambda: server.started or not thread.is_alive(), STARTUP_DEADLINE, what=f"server on port {port}")
        if not server.started:
            raise RuntimeError(f"the server on port {port} exited before it started")
        yield
    finally:
        server.should_exit = True
        thread.join(timeout=15)


@contextmanager
def serve_app(app: Any) -> Iterator[str]:
    """Any ASGI app on loopback (lifespan off); yields its base URL."""
    with _listening_socket() as sock, _run_uvicorn(app, sock, lifespan="off"):
        yield f"http://{LOOPBACK}:{sock.getsockname()[1]}"


@dataclass
class RunningGateway:
    url: str
    app: Starlette

    @property
    def gateway(self) -> Any:
        return self.app.state.gateway


@contextmanager
def serve_gateway(
    config: GatewayConfig, store: Any = None, apps: Any = None, *, ready: bool = True
) -> Iterator[RunningGateway]:
    """The gateway app on loopback in this process (lifespan on: store opened and closed);
    ``apps`` mounts in-process agents through the library API. ``ready``: return once its
    start-up recovery is done (else as soon as it answers)."""
    with _listening_socket() as sock:
        port = sock.getsockname()[1]
        # The app learns its own address (the demo agent's URL is built from it).
        app = create_app(config.with_overrides(host=LOOPBACK, port=port), store, apps)
        with _run_uvicorn(app, sock, lifespan="on"):
            # Ready as /readyz means it: the runs a crash left open are closed (in the background).
            started = app.state.gateway.readiness.started
            if ready:
                wait_until(started.is_set, STARTUP_DEADLINE, what="the gateway's start-up recovery")
            yield RunningGateway(f"http://{LOOPBACK}:{port}", app)


@contextmanager
def serve_scripted_gateway(data_dir: Path, agent_url: str, **overrides: Any) -> Iterator[RunningGateway]:
    """The gateway in-process with the scripted agent registered as ``scripted``."""
    config = GatewayConfig(data_dir=data_dir, agents={"scripted": agent_url}, **overrides)
    with serve_gateway(config) as gw:
        yield gw


@contextmanager
def refused_port() -> Iterator[str]:
    """A URL whose port is bound but not listening: connecting is refused at once,
    and holding the port keeps anyone else from taking it during the test."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind((LOOPBACK, 0))
    try:
        yield f"http://{LOOPBACK}:{sock.getsockname()[1]}/"
    finally:
        sock.close()


class GatewayProcess:
    """``agui-gateway serve`` as a child process (so it can be SIGKILLed and measured)."""

    def __init__(
        self,
        data_dir: Path,
        agents: dict[str, str],
        *extra_args: str,
        port: int | None = None,
        env: dict[str, str] | None = None,
        preexec: Callable[[], None] | None = None,
        gc: bool = True,
    ) -> None:
        self.data_dir = data_dir
        self.agents = agents
        self.extra_args = extra_args
        self.port = port or free_port()
        self.env = env
        self.preexec = preexec  # runs in the child before exec (e.g. to lower an rlimit)
        # gc=False: no cyclic garbage collector, so whatever is released is released
        # deterministically (by reference counting), not whenever a collection runs.
        self.gc = gc
        self.url = f"http://{LOOPBACK}:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = data_dir.parent / f"gateway-{self.port}.log"

    def start(self, timeout: float = 20.0) -> GatewayProcess:
        args = [
            sys.executable,
            "-c",
            ("" if self.gc else "import gc; gc.disable(); ") + "from agui_gateway.cli.main import main; main()",
            "serve",
            "--port",
            str(self.port),
            "--data",
            str(self.data_dir),
            "--log-level",
            "warning",
        ]
        for name, url in self.agents.items():
            args += ["--agent", f"{name}={url}"]
        args += list(self.extra_args)
        env = {**os.environ, **(self.env or {})}
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log_file:
            self.proc = subprocess.Popen(
                args, cwd=REPO_ROOT, env=env, stdout=log_file, stderr=subprocess.STDOUT, preexec_fn=self.preexec
            )
        try:
            wait_until(self._healthy, timeout, what="gateway answering /readyz", interval=0.05)
        except AssertionError:
            self.kill()
            raise
        return self

    def _healthy(self) -> bool:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise RuntimeError(f"gateway exited with {self.proc.returncode}: {self.log_path.read_text()[-2000:]}")
        try:
            # Ready: answering, and the runs a crash left open are closed (start-up recovery).
            return httpx.get(self.url + "/readyz", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=10)

    def terminate(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.kill()

    def open_fds(self) -> int:
        """The descriptors the process holds now."""
        assert self.proc is not None
        return len(os.listdir(f"/proc/{self.proc.pid}/fd"))

    def descriptors(self) -> list[str]:
        """What the process's descriptors point at (``socket:[inode]``, a file's path...)."""
        assert self.proc is not None
        directory = f"/proc/{self.proc.pid}/fd"
        targets = []
        for name in os.listdir(directory):
            try:
                targets.append(os.readlink(f"{directory}/{name}"))
            except FileNotFoundError:  # closed since the listing
                continue
        return targets

    def metric(self, name: str, text: str | None = None) -> float:
        """The value of the sample ``name`` in ``/metrics`` (or in ``text``, a page of it read
        before); it must be there, so a renamed or dropped metric fails the test instead of
        reading as 0 (and passing a "back to 0" wait).

        The one exception is a labelled counter's series that was never incremented (Prometheus
        shows it from its first use): 0, but only while the counter itself is declared.
        """
        if text is None:
            text = httpx.get(self.url + "/metrics", timeout=10).text
        found = re.search(rf"^{re.escape(name)} ([0-9.e+]+)$", text, re.MULTILINE)
        if found:
            return float(found[1])
        family, labelled, _ = name.partition("{")
        counter = rf"^# TYPE {re.escape(family.removesuffix('_total'))}(_total)? counter$"
        if labelled and re.search(counter, text, re.MULTILINE):
            return 0.0
        raise AssertionError(f"no metric {name} in /metrics")

    def rss_bytes(self) -> int:
        assert self.proc is not None
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        raise RuntimeError("no VmRSS")

    def __enter__(self) -> GatewayProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.kill()
