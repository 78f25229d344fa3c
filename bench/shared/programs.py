"""The programs the bench builds, where their source comes from, and the edits that the
scenarios make to them.

Two programs:

- `helloworld`: this repository's go-src/, the write-up's hello world (no dependencies).
- `age`: filippo.io/age v1.3.2, the file-encryption tool by Filippo Valsorda (then Go's
  security lead), built at ./cmd/age. No one on this team wrote it. It is a real program of the
  size the bench wants: about 7,000 lines of Go outside tests, plus six modules of
  dependencies (golang.org/x/crypto, x/sys, x/term, filippo.io/edwards25519, hpke, nistec)
  whose crypto packages carry assembly, so a cold build compiles far more than hello world.
  It is pure Go by design, so its main package builds with CGO_ENABLED=0 and runs on busybox
  or scratch; and its main package lives in a subdirectory, which exercises `--package`.

Each program is copied into the bench's work directory (git-ignored) before a run: the
scenarios edit that copy, never the repository's files. A module from the Go module proxy is
fetched with `go mod download` and vendored with `go mod vendor`, so every build after that
needs no network.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


class BenchError(RuntimeError):
    """Something the bench needs failed: one line saying what, and what to do."""


@dataclass(frozen=True)
class Program:
    """A Go program to build: where it comes from, its main package, and the two files the
    scenarios edit (a source file of the main package and a test file)."""

    name: str
    package: str
    source_file: str
    test_file: str
    module: str | None = None  # "path@version" on the Go module proxy; None: go-src/
    quick_tests: bool = True  # `go test ./...` takes seconds, not minutes
    runs_bare: bool = True  # run without arguments, it exits 0 (age prints its usage, exit 1)

    @property
    def origin(self) -> str:
        return self.module or "go-src/ (this repository)"


PROGRAMS: dict[str, Program] = {
    "helloworld": Program(
        name="helloworld",
        package=".",
        source_file="greeting.go",
        test_file="greeting_test.go",
    ),
    "age": Program(
        name="age",
        package="./cmd/age",
        source_file="cmd/age/age.go",
        test_file="cmd/age/age_test.go",
        module="filippo.io/age@v1.3.2",
        quick_tests=False,
        runs_bare=False,
    ),
}


def go_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment for the host's go command: its own toolchain whatever a go.mod asks
    (age's names go1.27.0 as its release toolchain; 1.25 is its minimum), module mode."""
    return {**os.environ, "GOTOOLCHAIN": "local", "GOFLAGS": "-mod=mod", **(extra or {})}


def _go(args: list[str], cwd: Path, what: str) -> str:
    done = subprocess.run(
        ["go", *args], cwd=cwd, env=go_env(), capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["(no output)"])[-1]
        raise BenchError(
            f"{what} failed: {last} (no module proxy in the test bed's namespace? run "
            "`python -m bench --fetch-only` outside it once, to fill the module cache)"
        )
    return done.stdout


def _make_writable(root: Path) -> None:
    """Files from the module cache are read-only; the scenarios edit the copy."""
    for directory, _, files in os.walk(root):
        for name in [".", *files]:
            path = Path(directory) / name
            path.chmod(path.stat().st_mode | stat.S_IWUSR)


def fetch(program: Program, work: Path) -> Path:
    """A fresh copy of the program's source under `work`/src/<name>, vendored if it has
    dependencies; returns its directory."""
    target = work / "src" / program.name
    if target.exists():
        shutil.rmtree(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    if program.module is None:
        shutil.copytree(REPO / "go-src", target)
        return target
    info = json.loads(
        _go(["mod", "download", "-json", program.module], work, f"go mod download {program.module}")
    )
    shutil.copytree(info["Dir"], target)
    _make_writable(target)
    _go(["mod", "vendor"], target, f"go mod vendor in {target}")
    return target


def install_ko(version: str, work: Path) -> Path:
    """ko, installed from the Go module proxy into `work`/bin (once)."""
    binary = work / "bin" / "ko"
    marker = work / "bin" / f".ko-{version}"
    if binary.is_file() and marker.is_file():
        return binary
    binary.parent.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(
        ["go", "install", f"github.com/google/ko@{version}"],
        env=go_env({"GOBIN": str(binary.parent)}),
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["(no output)"])[-1]
        raise BenchError(
            f"go install github.com/google/ko@{version} failed: {last} (run "
            "`python -m bench --fetch-only` outside the test bed's namespace once)"
        )
    marker.touch()
    return binary


def floor(program: Program, source: Path, out: Path) -> int:
    """The floor: the size of the static binary alone, built on the host with our flags."""
    out.parent.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(
        ["go", "build", "-trimpath", "-ldflags=-s -w", "-o", str(out), program.package],
        cwd=source,
        # No VCS stamp: the copy sits in this repository's tree; the images' builds see no .git.
        env=go_env({"CGO_ENABLED": "0", "GOFLAGS": "-buildvcs=false"}),
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise BenchError(f"go build of {program.name} on the host failed: {done.stderr.strip()}")
    return out.stat().st_size


def edit_line(original: bytes, nonce: str) -> bytes:
    """A Go source file with one line appended: `var _ = "bench edit NONCE"` (it compiles, and
    each nonce makes a new package)."""
    newline = b"" if original.endswith(b"\n") else b"\n"
    return original + newline + f'var _ = "bench edit {nonce}"\n'.encode()


@contextmanager
def edited(path: Path, nonce: str) -> Iterator[None]:
    """The file with one line appended (edit_line), restored byte for byte afterwards."""
    original = path.read_bytes()
    path.write_bytes(edit_line(original, nonce))
    try:
        yield
    finally:
        path.write_bytes(original)
