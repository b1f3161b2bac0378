"""Private Redis servers for the tests: a single server, a 3-node Redis Cluster, a TLS server.

All are started from the ``redis-server`` binary in temporary directories on free
loopback ports (no persistence) and stopped at the end of the session, so no test
depends on a Redis the machine happens to run. ``AGUI_TEST_REDIS_URL`` (set by
``scripts/test.sh`` when it found or started one) replaces the private single server.
A TLS server (``RedisServer(..., tls=certificates)``) listens on its TLS port only;
Debian's redis-server is built with OpenSSL, so it needs nothing more.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlencode

from support.certificates import Certificates
from support.waiting import wait_until


def _in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


class RedisUnavailable(RuntimeError):
    pass


def _port_free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_redis_port() -> int:
    """A free port whose cluster bus port (port + 10000) is free as well."""
    for _ in range(200):
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        if port < 55000 and _port_free(port + 10000):
            return port
    raise RedisUnavailable("no free port pair for a Redis cluster node")


def answers(port: int, tls: Certificates | None = None) -> bool:
    """Whether a Redis answers PING on ``port`` (over TLS, with the client certificate, when ``tls``)."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as raw:
            sock = raw if tls is None else tls.client_context().wrap_socket(raw, server_hostname="127.0.0.1")
            with sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(16).startswith((b"+PONG", b"-NOAUTH"))  # a password-protected one answers too
    except OSError:  # ssl.SSLError included
        return False


def redis_binary() -> str:
    binary = shutil.which("redis-server")
    if binary is None:
        raise RedisUnavailable("redis-server is not installed (scripts/test.sh installs it)")
    return binary


class RedisServer:
    """One ``redis-server`` child process; with ``tls``, on a TLS port only (``--port 0``),
    its certificate signed by the given test CA (``--tls-auth-clients`` goes in ``extra``)."""

    def __init__(self, directory: Path, port: int, *extra: str, tls: Certificates | None = None) -> None:
        self.port = port
        self.directory = directory
        self.tls = tls
        directory.mkdir(parents=True, exist_ok=True)
        listen = ["--port", str(port)]
        if tls is not None:
            listen = ["--port", "0", "--tls-port", str(port), "--tls-cert-file", str(tls.server_cert)]
            listen += ["--tls-key-file", str(tls.server_key), "--tls-ca-cert-file", str(tls.ca)]
        args = [redis_binary(), *listen, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        args += ["--dir", str(directory), "--logfile", str(directory / "redis.log"), *extra]
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_until(lambda: answers(port, tls) or self.proc.poll() is not None, 10, what=f"redis-server on port {port}")
        if not answers(port, tls):
            self.stop()
            raise RedisUnavailable(f"redis-server on port {port} did not start (see {directory}/redis.log)")

    @property
    def url(self) -> str:
        return self.url_with()

    def url_with(self, password: str | None = None, **options: str) -> str:
        """The server's URL, with ``password`` in it; a TLS server's is a rediss:// URL that
        trusts the test CA, ``options`` adding to or replacing its query parameters."""
        if self.tls is None:
            base = "redis://"
            query: dict[str, str] = {}
        else:
            base = "rediss://"
            query = {"ssl_ca_certs": str(self.tls.ca)}
        query.update(options)
        auth = f":{password}@" if password else ""
        return f"{base}{auth}127.0.0.1:{self.port}/0" + (f"?{urlencode(query, safe='/')}" if query else "")

    def kill(self) -> None:
        """SIGKILL, as a crashed server or a lost node: no shutdown save (with
        ``--appendfsync always`` every acknowledged write is on disk already)."""
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)


@contextmanager
def single_server() -> Iterator[str]:
    with tempfile.TemporaryDirectory(prefix="agui-redis-") as tmp:
        server = RedisServer(Path(tmp), free_redis_port())
        try:
            yield server.url
        finally:
            server.stop()


def _redis_cli(tls: Certificates | None) -> list[str]:
    if tls is None:
        return ["redis-cli"]
    return ["redis-cli", "--tls", "--cacert", str(tls.ca), "--cert", str(tls.client_cert), "--key", str(tls.client_key)]


def _cluster_ok(server: RedisServer) -> bool:
    out = subprocess.run(
        [*_redis_cli(server.tls), "-p", str(server.port), "cluster", "info"],
        capture_output=True,
        text=True,
        timeout=5,
        check=False,
    ).stdout
    return "cluster_state:ok" in out


@contextmanager
def cluster(nodes: int = 3, tls: Certificates | None = None) -> Iterator[str]:
    """A Redis Cluster of ``nodes`` primaries (no replicas); yields the URL of one node.
    With ``tls`` the nodes speak TLS only, to clients and to each other (``--tls-cluster``)."""
    if shutil.which("redis-cli") is None:
        raise RedisUnavailable("redis-cli is not installed (scripts/test.sh installs it)")
    options = ["--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf", "--cluster-node-timeout", "2000"]
    if tls is not None:
        options += ["--tls-cluster", "yes", "--tls-auth-clients", "no"]
    with tempfile.TemporaryDirectory(prefix="agui-redis-cluster-") as tmp:
        servers: list[RedisServer] = []
        try:
            for index in range(nodes):
                servers.append(RedisServer(Path(tmp) / str(index), free_redis_port(), *options, tls=tls))
            create = [*_redis_cli(tls), "--cluster", "create", *(f"127.0.0.1:{s.port}" for s in servers)]
            subprocess.run(
                [*create, "--cluster-replicas", "0", "--cluster-yes"],
                capture_output=True,
                timeout=30,
                check=True,
            )
            for server in servers:
                wait_until(
                    lambda s=server: _cluster_ok(s), 20, what="the Redis cluster's cluster_state:ok", interval=0.05
                )
            yield servers[0].url
        finally:
            for server in servers:
                server.stop()
