"""Base images pinned by digest: what a tag resolved to in this run, and the lock file that
makes the next run use exactly that (or fail, saying the tag moved).

The lock file (`--lock FILE`), JSON:

    {"schema_version": 1,
     "images": {"golang:1.26": "docker.io/library/golang:1.26@sha256:…",
                "busybox:1.35": "docker.io/library/busybox:1.35@sha256:…"}}
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

from pipeline.errors import PipelineError, UsageError
from pipeline.outputs import write_text

SCHEMA_VERSION = 1


def digest_of(pinned: str) -> str:
    return pinned.partition("@")[2]


def read_lock(path: Path | None) -> dict[str, str]:
    """The pins in the lock file; none if there is no lock file (yet)."""
    if path is None or not path.exists():
        return {}
    refused = UsageError(
        f"--lock {path}: not a lock file this version wrote; delete it to write a new one"
    )
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        raise refused from None
    images = data.get("images") if isinstance(data, dict) else None
    if not isinstance(images, dict) or data.get("schema_version") != SCHEMA_VERSION:
        raise refused
    return {str(k): str(v) for k, v in images.items()}


def check(requested: str, resolved: str, lock: Mapping[str, str], path: Path | None) -> str:
    """The pinned reference to build from: the locked one, if the tag still points there."""
    locked = lock.get(requested)
    if locked is None:
        return resolved
    if digest_of(locked) != digest_of(resolved):
        raise PipelineError(
            f"{requested} now points to {digest_of(resolved)}, but {path} pins "
            f"{digest_of(locked)}: pin the old digest in the image reference, or delete the "
            "lock file to accept the new one"
        )
    return locked


def write_lock(path: Path, pins: Mapping[str, str]) -> None:
    """Write (atomically) the lock file with `pins` added to what it held."""
    merged = {**read_lock(path), **pins}
    document = {"schema_version": SCHEMA_VERSION, "images": dict(sorted(merged.items()))}
    write_text(path, json.dumps(document, indent=2) + "\n")
