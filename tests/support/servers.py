"""Real uvicorn servers on loopback for tests, each in its own thread and event loop.

``serve_app(app)`` binds a free port on 127.0.0.1 before the server starts (so there
is no race for the port), runs uvicorn on it in a daemon thread and yields the base
URL; on exit it asks uvicorn to stop and joins the thread.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import uvicorn

STARTUP_DEADLINE = 10.0


def wait_until(condition: Callable[[], bool], timeout: float = 10.0, interval: float = 0.005) -> bool:
    """Polls ``condition`` until it holds or ``timeout`` passes; returns whether it held."""
    deadline = time.monotonic() + timeout
    while True:
        if condition():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)


@contextmanager
def serve_app(app: Any, host: str = "127.0.0.1") -> Iterator[str]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, 0))
    sock.listen(128)
    port = sock.getsockname()[1]
    config = uvicorn.Config(app, log_level="warning", lifespan="off", timeout_graceful_shutdown=2, access_log=False)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True, name=f"uvicorn-{port}")
    thread.start()
    try:
        if not wait_until(lambda: server.started or not thread.is_alive(), STARTUP_DEADLINE) or not server.started:
            raise RuntimeError("test server did not start")
        yield f"http://{host}:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


@contextmanager
def refused_port(host: str = "127.0.0.1") -> Iterator[str]:
    """A URL whose port is bound but not listening: connecting is refused at once,
    and holding the port keeps anyone else from taking it during the test."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind((host, 0))
    try:
        yield f"http://{host}:{sock.getsockname()[1]}/"
    finally:
        sock.close()
