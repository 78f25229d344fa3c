"""pipeline.image.buildinfo: the build info of real Go binaries, read from their bytes, is what
`go version -m -json` prints for them: for each word size and byte order, with a replaced
module, in GOPATH mode; and what is not a Go binary is refused."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from pipeline.image import buildinfo
from pipeline.recipe.stages import STATIC_FLAGS

ROOT = Path(__file__).resolve().parent.parent
WITHDEPS = ROOT / "tests" / "fixtures" / "withdeps"


def _env(**extra: str) -> dict[str, str]:
    return {
        "PATH": "/usr/local/go/bin:/usr/bin:/bin",
        "GOFLAGS": "-mod=mod",
        "GOPROXY": "off",
        "HOME": str(Path.home()),
        "CGO_ENABLED": "0",
        **extra,
    }


def _build(source: Path, binary: Path, *flags: str, **env: str) -> Path:
    subprocess.run(
        ["go", "build", *flags, "-o", str(binary), "."], check=True, env=_env(**env), cwd=source
    )
    return binary


def _go_version(binary: Path) -> dict[str, Any]:
    """What the go command reads from the binary: the reference."""
    done = subprocess.run(
        ["go", "version", "-m", "-json", str(binary)],
        check=True,
        capture_output=True,
        text=True,
        env=_env(),
    )
    printed: dict[str, Any] = json.loads(done.stdout)
    return printed


@pytest.mark.parametrize(
    "goarch",
    [
        "amd64",  # 64-bit little-endian
        "arm64",
        "386",  # 32-bit
        "s390x",  # big-endian
    ],
)
def test_reads_what_go_version_prints_for_each_architecture(goarch: str, tmp_path: Path) -> None:
    binary = _build(WITHDEPS, tmp_path / "withdeps", *STATIC_FLAGS, GOARCH=goarch)
    got = buildinfo.read(binary.read_bytes())
    want = _go_version(binary)
    assert got == want, f"got {got}, want {want}"
    assert any(dep["Path"] == "github.com/google/uuid" for dep in got["Deps"])


def test_reads_a_replaced_module_and_unstripped_binary(tmp_path: Path) -> None:
    source = tmp_path / "main"
    (source / "dep").mkdir(parents=True)
    (source / "dep" / "go.mod").write_text("module example.com/dep\n\ngo 1.21\n")
    (source / "dep" / "dep.go").write_text('package dep\n\nconst Name = "dep"\n')
    (source / "go.mod").write_text(
        "module example.com/main\n\ngo 1.21\n\nrequire example.com/dep v1.0.0\n\n"
        "replace example.com/dep v1.0.0 => ./dep\n"
    )
    (source / "main.go").write_text(
        'package main\n\nimport "example.com/dep"\n\nfunc main() { println(dep.Name) }\n'
    )
    binary = _build(source, tmp_path / "replaced")  # not stripped, no -trimpath
    got = buildinfo.read(binary.read_bytes())
    want = _go_version(binary)
    assert got == want, f"got {got}, want {want}"
    (dep,) = got["Deps"]
    assert dep["Replace"] == {"Path": "./dep", "Version": "(devel)"}


def test_reads_a_binary_built_without_a_module(tmp_path: Path) -> None:
    source = tmp_path / "gopath"
    source.mkdir()
    (source / "main.go").write_text('package main\n\nfunc main() { println("hi") }\n')
    binary = _build(source, tmp_path / "hi", GO111MODULE="off", GOFLAGS="")
    got = buildinfo.read(binary.read_bytes())
    want = _go_version(binary)
    assert got == want, f"got {got}, want {want}"
    assert got["Main"] == {}


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"#!/bin/sh\necho not a binary\n", "not an ELF binary"),
        (Path("/bin/sh").read_bytes(), "no Go build info"),
    ],
)
def test_refuses_what_is_not_a_go_binary(data: bytes, message: str) -> None:
    with pytest.raises(buildinfo.BuildInfoError, match=message):
        buildinfo.read(data)


@pytest.mark.parametrize(
    ("modinfo", "want"),
    [
        (
            'path\tx\nmod\tx\t(devel)\t\nbuild\t"a b"=`c d`\nbuild\t-ldflags="-s -w"\n',
            {
                "GoVersion": "go1.99",
                "Path": "x",
                "Main": {"Path": "x", "Version": "(devel)"},
                "Settings": [
                    {"Key": "a b", "Value": "c d"},
                    {"Key": "-ldflags", "Value": "-s -w"},
                ],
            },
        ),
        # Text after the last newline is not a line; lines without a tab are skipped.
        ("path\tx\nbuild\npath\ty", {"GoVersion": "go1.99", "Path": "x", "Main": {}}),
        (
            "build\tCGO_ENABLED=\n",
            {"GoVersion": "go1.99", "Main": {}, "Settings": [{"Key": "CGO_ENABLED"}]},
        ),
    ],
)
def test_parses_module_info_lines_as_go_does(modinfo: str, want: dict[str, Any]) -> None:
    got = buildinfo.parse("go1.99", modinfo)
    assert got == want, f"got {got}, want {want}"


@pytest.mark.parametrize(
    ("modinfo", "message"),
    [
        ("dep\ta\n", "expected 2 or 3 columns"),
        ("=>\ta\tv1\th1:x\n", "replacement with no module"),
        ("build\t=x\n", "missing key"),
        ("build\tkey\n", "missing '=' after key"),
        ("build\tkey=a b\n", "must be quoted"),
    ],
)
def test_refuses_module_info_go_would_refuse(modinfo: str, message: str) -> None:
    with pytest.raises(buildinfo.BuildInfoError, match=message):
        buildinfo.parse("go1.99", modinfo)
