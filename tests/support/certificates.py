"""A private certificate authority for the TLS tests, made with ``trustme`` and written as PEM files.

The server certificate names 127.0.0.1 and localhost, so clients verify it and its
host name as they would in production; the client certificate (same CA) is for
servers that verify their clients (mutual TLS).
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from pathlib import Path

import trustme


@dataclass(frozen=True)
class Certificates:
    ca: Path  # the CA certificate a client trusts
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path

    def client_context(self) -> ssl.SSLContext:
        """A client's TLS context: trusts the CA, presents the client certificate."""
        context = ssl.create_default_context(cafile=str(self.ca))
        context.load_cert_chain(str(self.client_cert), str(self.client_key))
        return context


def make_certificates(directory: Path) -> Certificates:
    directory.mkdir(parents=True, exist_ok=True)
    ca = trustme.CA()
    server = ca.issue_cert("127.0.0.1", "localhost")
    client = ca.issue_cert("agui-gateway-tests@example.com")
    files = Certificates(
        ca=directory / "ca.pem",
        server_cert=directory / "server.crt",
        server_key=directory / "server.key",
        client_cert=directory / "client.crt",
        client_key=directory / "client.key",
    )
    ca.cert_pem.write_to_path(str(files.ca))
    server.cert_chain_pems[0].write_to_path(str(files.server_cert))
    server.private_key_pem.write_to_path(str(files.server_key))
    client.cert_chain_pems[0].write_to_path(str(files.client_cert))
    client.private_key_pem.write_to_path(str(files.client_key))
    return files


def untrusted_ca(directory: Path) -> Path:
    """The certificate of another CA: one that signed none of the servers' certificates."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "other-ca.pem"
    trustme.CA().cert_pem.write_to_path(str(path))
    return path
