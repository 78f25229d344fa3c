"""The machine a bench ran on: CPUs, memory, kernel, load, and the versions of every tool
that took part (the engine's own version comes from the probe session, in bench.speed.breakdown)."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from collections.abc import Mapping
from importlib import metadata
from pathlib import Path
from typing import Any

from bench.shared.programs import REPO


def _output(command: list[str]) -> str:
    """The first line a command prints, or what went wrong (a description never fails)."""
    try:
        done = subprocess.run(command, capture_output=True, text=True, check=False, timeout=60)
    except OSError as err:
        return f"unavailable ({err.strerror})"
    lines = (done.stdout.strip() or done.stderr.strip()).splitlines()
    return lines[0] if lines else f"unavailable (exit {done.returncode})"


def _field(path: Path, key: str) -> str:
    """`key: value` or `KEY=value` from a /proc or /etc file."""
    try:
        text = path.read_text()
    except OSError:
        return "?"
    for line in text.splitlines():
        name, sep, value = line.partition(":" if ":" in line else "=")
        if sep and name.strip() == key:
            return value.strip().strip('"')
    return "?"


def loadavg() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def describe(*, docker: str | None, ko: Path | None) -> dict[str, Any]:
    """The machine, and the versions of the tools given (None: not part of this run)."""
    memory_kb = _field(Path("/proc/meminfo"), "MemTotal").split()[0]
    dagger_cli = os.environ.get("_EXPERIMENTAL_DAGGER_CLI_BIN", "dagger")
    dirty = _output(["git", "-C", str(REPO), "status", "--porcelain", "--", "pipeline"])
    return {
        "cpu_count": os.cpu_count(),
        "cpu_model": _field(Path("/proc/cpuinfo"), "model name"),
        "memory_bytes": int(memory_kb) * 1024 if memory_kb.isdigit() else None,
        "kernel": platform.release(),
        "os": _field(Path("/etc/os-release"), "PRETTY_NAME"),
        "python": platform.python_version(),
        "go": _output(["go", "version"]),
        "docker_client": (
            _output([docker, "version", "--format", "{{.Client.Version}}"]) if docker else None
        ),
        "docker_server": (
            _output([docker, "version", "--format", "{{.Server.Version}}"]) if docker else None
        ),
        "ko": _output([str(ko), "version"]) if ko else None,
        "dagger_sdk": metadata.version("dagger-io"),
        "dagger_cli": _output([dagger_cli, "version"]),
        "pipeline_commit": _output(["git", "-C", str(REPO), "rev-parse", "HEAD"]),
        # Others may be changing pipeline/ while this runs: say whether it was as committed.
        "pipeline_dirty": bool(dirty) and not dirty.startswith("unavailable"),
        "executable": sys.executable,
        "loadavg_start": loadavg(),
    }


def sentence(m: Mapping[str, Any], *, model: bool = True, kernel: bool = True) -> str:
    """The machine as every report of the bench names it: `2 CPUs (its model), 24 GiB, Linux
    6.1.0`; without the CPU's model or the kernel where a report leaves them out."""
    cpus = f"{m.get('cpu_count')} CPUs" + (f" ({m.get('cpu_model', '?')})" if model else "")
    parts = [cpus, f"{(m.get('memory_bytes') or 0) / 2**30:.0f} GiB"]
    return ", ".join([*parts, f"Linux {m.get('kernel', '?')}"] if kernel else parts)


def engine(m: Mapping[str, Any]) -> str:
    """`dagger engine v0.21.9 (SDK 0.21.11)`"""
    return f"dagger engine {m.get('dagger_engine', '?')} (SDK {m.get('dagger_sdk', '?')})"


def load_average(m: Mapping[str, Any]) -> str:
    return f"Load average at start/end: {m.get('loadavg_start', '?')} / {m.get('loadavg_end', '?')}"
