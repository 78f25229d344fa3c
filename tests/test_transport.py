"""pipeline.registry.transport: --registry-ca is added to the system's CAs (it used to replace
them), checked against real TLS servers signed by two CAs made here; the deadline stops a client
that was told to stop. The token flow, retries and timeouts run against the test bed's
registries in tests/test_remote.py."""

from __future__ import annotations

import contextlib
import http.server
import ssl
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from pipeline.errors import RegistryError
from pipeline.refs import parse_image_ref
from pipeline.registry.access import Deadline, Login
from pipeline.registry.transport import Client


def _self_signed_ca(directory: Path, name: str) -> tuple[Path, Path, Path]:
    """A CA and a server certificate for 127.0.0.1 that it signs: (ca, cert, key)."""
    ca_key, ca = directory / f"{name}-ca.key", directory / f"{name}-ca.pem"
    key, csr, cert = directory / f"{name}.key", directory / f"{name}.csr", directory / f"{name}.pem"
    ext = directory / f"{name}.ext"
    ext.write_text("subjectAltName=IP:127.0.0.1\n")
    for command in (
        ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", ca_key, "-out", ca,
         "-days", "2", "-subj", f"/CN={name} CA"],
        ["req", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", csr,
         "-subj", "/CN=127.0.0.1"],
        ["x509", "-req", "-in", csr, "-CA", ca, "-CAkey", ca_key, "-CAcreateserial",
         "-out", cert, "-days", "2", "-extfile", ext],
    ):  # fmt: skip
        subprocess.run(["openssl", *map(str, command)], check=True, capture_output=True)
    return ca, cert, key


@contextlib.contextmanager
def https_server(cert: Path, key: Path) -> Iterator[int]:
    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


def test_registry_ca_is_added_to_the_system_cas(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A token realm or a blob redirect with a public certificate still verifies when
    --registry-ca names the registry's own CA (it used to replace the system store)."""
    system_ca, system_cert, system_key = _self_signed_ca(tmp_path, "public")
    own_ca, own_cert, own_key = _self_signed_ca(tmp_path, "own")
    for variable in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "SSL_CERT_DIR"):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("SSL_CERT_FILE", str(system_ca))  # the "system" store, for this test
    with https_server(system_cert, system_key) as public, https_server(own_cert, own_key) as own:
        ref = parse_image_ref(f"127.0.0.1:{own}/app:1", option="--publish")
        client = Client(ref, Login(None, None, own_ca), Deadline.of(30))
        assert client.session.get(f"https://127.0.0.1:{own}/", timeout=10).text == "ok"
        assert client.session.get(f"https://127.0.0.1:{public}/", timeout=10).text == "ok"
        unknown = Client(ref, Login(None, None, system_ca), Deadline.of(30))
        with pytest.raises(requests.exceptions.SSLError):
            unknown.session.get(f"https://127.0.0.1:{own}/", timeout=10)


def test_a_stopped_budget_refuses_the_next_request() -> None:
    deadline = Deadline.of(60)
    assert 0 < deadline.timeout("r")[1] <= 60
    deadline.stop.set()
    with pytest.raises(RegistryError, match="push to r stopped"):
        deadline.timeout("r")
    assert Deadline.of(-1).stop.is_set() is False
    with pytest.raises(RegistryError, match="did not finish the push in time"):
        Deadline.of(-1).left("r")
