"""Layers compressed canonically, kept between runs.

A layer's canonical compression (pipeline.image.canonical) depends only on its tar and the pinned
libdeflate, so a layer compressed by one run need not be compressed again by the next: the
base image's layer never changes, and the binary's only when the source does. `Kept` is the
memo `normalise` takes (by the layer's digest in the engine's export), backed by files in
the user's cache directory (pipeline.outputs.cache_home):
`layers-<deflate version>-<level>/<key>.<diff_id>.<gzip digest>.gz`, all three sha256 in hex.

A file is used only if its bytes hash to the digest in its name, so a file cut short or
changed is compressed again (and the file replaced), never put into an image. Files are
written whole (a temporary name, then renamed) from the thread that compressed the layer;
the KEEP newest are kept. A cache that cannot be read or written costs the compression it
would have saved, nothing else.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
from collections.abc import Iterator, MutableMapping
from importlib import metadata
from pathlib import Path

from pipeline.image.canonical import LEVEL

KEEP = 16  # files kept (the newest): base layers and the last binaries of a few programs


def directory(cache: Path) -> Path:
    """Where the layers compressed by this libdeflate at this level are kept, under `cache`."""
    return cache / f"layers-{metadata.version('deflate')}-{LEVEL}"


def _hex(digest: str) -> str:
    return digest.removeprefix("sha256:")


class Kept(MutableMapping[str, tuple[bytes, str]]):
    """Layer digest → (canonical gzip, diff_id), in memory for the session and on disk."""

    def __init__(self, where: Path) -> None:
        self.where = where
        self.memory: dict[str, tuple[bytes, str]] = {}

    def _load(self, key: str) -> tuple[bytes, str] | None:
        with contextlib.suppress(OSError, ValueError):
            for path in self.where.glob(f"{_hex(key)}.*.gz"):
                _, diff_id, digest, _ = path.name.split(".")
                data = path.read_bytes()
                if hashlib.sha256(data).hexdigest() == digest:
                    path.touch()  # the newest: kept longest
                    return data, f"sha256:{diff_id}"
                path.unlink(missing_ok=True)  # cut short or changed
        return None

    def __contains__(self, key: object) -> bool:
        if not isinstance(key, str):
            return False
        if key not in self.memory and (found := self._load(key)) is not None:
            self.memory[key] = found
        return key in self.memory

    def __getitem__(self, key: str) -> tuple[bytes, str]:
        if key not in self:
            raise KeyError(key)
        return self.memory[key]

    def __setitem__(self, key: str, value: tuple[bytes, str]) -> None:
        self.memory[key] = value
        data, diff_id = value
        name = f"{_hex(key)}.{_hex(diff_id)}.{hashlib.sha256(data).hexdigest()}.gz"
        with contextlib.suppress(OSError):
            self.where.mkdir(parents=True, exist_ok=True)
            # Whole or not at all (not outputs.atomic_path: its umask dance is not for a
            # worker thread beside others that write files).
            fd, tmp = tempfile.mkstemp(prefix=".", suffix=".tmp", dir=self.where)
            try:
                with os.fdopen(fd, "wb") as out:
                    out.write(data)
                os.replace(tmp, self.where / name)
            finally:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(tmp)
            kept = sorted(self.where.glob("*.gz"), key=lambda p: p.stat().st_mtime, reverse=True)
            for old in kept[KEEP:]:
                old.unlink(missing_ok=True)

    def __delitem__(self, key: str) -> None:
        del self.memory[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self.memory)

    def __len__(self) -> int:
        return len(self.memory)
