"""What the tests of bench/ (tests/test_bench_*.py) share: the repository's root, `python -m
bench` run there, bench.cli.resolve() with every flag at its default but those given, git in the
repository, and the `hello` fixture, a copy of go-src/ (skipped without go)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from bench.cli import resolve
from bench.speed.run import Options

ROOT = Path(__file__).resolve().parent.parent


def _bench(
    *args: str, env: dict[str, str] | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bench", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=timeout,
    )


def _resolve(**overrides: Any) -> Options:
    given: dict[str, Any] = {
        "samples": None,
        "cold_samples": None,
        "quick": False,
        "programs": None,
        "peers": None,
        "scenarios": None,
        "work": Path("bench/.work"),
        "registry": "127.0.0.1:5000",
        "docker": "/usr/bin/docker",
        "go_image": "golang:1.26",
        "runtime_image": "busybox:1.35",
        "breakdown": True,
        "baseline": None,
    }
    return resolve(**{**given, **overrides})


def _git(*args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(ROOT), *args], capture_output=True, text=True, check=True
    ).stdout.strip()


@pytest.fixture(name="hello")
def fixture_hello(tmp_path: Path) -> Path:
    if shutil.which("go") is None:
        pytest.skip("no go on PATH")
    copy = tmp_path / "helloworld"
    shutil.copytree(ROOT / "go-src", copy)
    return copy
