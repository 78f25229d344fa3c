"""pipeline.flows.docker_cli against the test bed's real Docker: a bad tarball fails in one line."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.errors import PipelineError
from pipeline.flows.docker_cli import load
from tests.conftest import Testbed


def test_load_of_a_broken_tarball_says_so(
    testbed: Testbed, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DOCKER_HOST", testbed["DOCKER_HOST"])
    monkeypatch.setenv("PIPELINE_DOCKER", testbed.docker[0])
    broken = tmp_path / "broken.tar"
    broken.write_bytes(b"not a tarball")
    with pytest.raises(PipelineError, match=r"docker load of .*broken.tar failed: .+"):
        load(broken, "broken:test")


def test_load_needs_a_docker_cli(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("PIPELINE_DOCKER", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(PipelineError, match="needs the docker CLI"):
        load(tmp_path / "x.tar", "x:y")
