"""pipeline.engine.address: the runner-host forms it can probe, and probes of real sockets.
(Moved here from tests/test_provision.py with provision.Runner, now address.Address.)"""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from pipeline.engine.address import Address


@pytest.mark.parametrize(
    ("text", "scheme", "where"),
    [
        ("unix:///run/dagger/engine.sock", "unix", "/run/dagger/engine.sock"),
        ("tcp://10.0.0.5:1234", "tcp", "10.0.0.5:1234"),
        ("image://registry.dagger.io/engine:v0.21.11", None, None),
        ("kube-pod://dagger-engine?namespace=ci", None, None),
    ],
)
def test_runner_hosts_it_can_probe(text: str, scheme: str | None, where: str | None) -> None:
    address = Address.parse(text)
    if scheme is None:
        assert address is None
        return
    assert address is not None
    assert address.scheme == scheme
    assert (address.path or f"{address.host}:{address.port}") == where


def test_probes_of_real_sockets(tmp_path: Path) -> None:
    path = tmp_path / "engine.sock"
    address = Address.parse(f"unix://{path}")
    assert address is not None
    assert address.probe() == "No such file or directory"
    with socket.socket(socket.AF_UNIX) as listening:
        listening.bind(str(path))
        listening.listen()
        assert address.probe() is None
    assert address.probe() == "Connection refused"
    with socket.socket() as tcp:
        tcp.bind(("127.0.0.1", 0))
        port = tcp.getsockname()[1]
    refused = Address.parse(f"tcp://127.0.0.1:{port}")
    assert refused is not None
    assert refused.probe() == "Connection refused"
