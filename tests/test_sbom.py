"""pipeline.image.sbom: SPDX 2.3 from a real binary's build info, valid, byte-identical."""

from __future__ import annotations

import base64
import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
from spdx_tools.spdx.parser.parse_anything import parse_file
from spdx_tools.spdx.validation.document_validator import validate_full_spdx_document

from pipeline.image.buildinfo import read
from pipeline.image.sbom import Subject, build_sbom

ROOT = Path(__file__).resolve().parent.parent
SUBJECT = Subject(
    "withdeps:multistage",
    "sha256:" + "a" * 64,
    "docker.io/library/busybox:1.35@sha256:" + "b" * 64,
    1700000000,
)


@pytest.fixture(scope="module")
def buildinfo(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The binary's build info, read as the pipeline reads it (tests/test_buildinfo.py holds
    that to `go version -m -json`)."""
    binary = tmp_path_factory.mktemp("bin") / "withdeps"
    env = {
        "PATH": "/usr/local/go/bin:/usr/bin:/bin",
        "GOFLAGS": "-mod=mod",
        "GOPROXY": "off",
        "HOME": str(Path.home()),
        "CGO_ENABLED": "0",
    }
    subprocess.run(
        ["go", "build", "-trimpath", "-o", str(binary), "."],
        check=True,
        env=env,
        cwd=ROOT / "tests" / "fixtures" / "withdeps",
    )
    return read(binary.read_bytes())


def test_lists_modules_with_checksums_and_validates(
    buildinfo: dict[str, Any], tmp_path: Path
) -> None:
    data = build_sbom(buildinfo, SUBJECT)
    path = tmp_path / "sbom.spdx.json"
    path.write_bytes(data)
    document = parse_file(str(path))
    assert validate_full_spdx_document(document) == []
    packages = {p.name: p for p in document.packages}
    assert {
        "withdeps:multistage",
        "docker.io/library/busybox:1.35",
        "example.com/withdeps",
        "stdlib",
        "github.com/google/uuid",
    } <= set(packages)
    uuid = packages["github.com/google/uuid"]
    assert uuid.version == "v1.6.0"
    go_sum = (ROOT / "tests" / "fixtures" / "withdeps" / "go.sum").read_text().split()
    h1 = go_sum[go_sum.index("v1.6.0") + 1].removeprefix("h1:")  # the module's go.sum hash
    assert uuid.checksums[0].value == base64.b64decode(h1).hex()
    raw = json.loads(data)
    assert raw["spdxVersion"] == "SPDX-2.3"
    assert raw["creationInfo"]["created"] == "2023-11-14T22:13:20Z"


def test_byte_identical(buildinfo: dict[str, Any]) -> None:
    assert build_sbom(buildinfo, SUBJECT) == build_sbom(buildinfo, SUBJECT)
