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

`Scanned` keeps what read_image learns of a big layer (its sizes and its files) the same way,
by the layer's digest, in `scans-<version>/<digest>.<sha256 of the file>.json`: the Go image's
layer is 663MB of tar to inflate and list, again in each run that reads a naive or builder
image. What a scan says depends on the blob's bytes alone, which its digest names.
"""

from __future__ import annotations

import abc
import contextlib
import hashlib
import json
import os
import tempfile
from collections.abc import Iterator, MutableMapping
from importlib import metadata
from pathlib import Path
from typing import TypeVar

from pipeline.image.canonical import LEVEL
from pipeline.image.oci import Layer
from pipeline.outputs import keep_newest, kept_bytes

KEEP = 16  # files kept (the newest): base layers and the last binaries of a few programs
SCANS = 1  # the version of the scans' file format
SCANNED_FROM = 32 << 20  # uncompressed bytes from which a layer's scan is kept (less: read again)

V = TypeVar("V")


def directory(cache: Path) -> Path:
    """Where the layers compressed by this libdeflate at this level are kept, under `cache`."""
    return cache / f"layers-{metadata.version('deflate')}-{LEVEL}"


def memos(cache: Path) -> tuple[Kept, Scanned]:
    """The session's memos of compressed and of scanned layers, kept under `cache`."""
    return Kept(directory(cache)), Scanned(cache / f"scans-{SCANS}")


def _hex(digest: str) -> str:
    return digest.removeprefix("sha256:")


def _keep(where: Path, name: str, data: bytes) -> None:
    """`data` written whole as `where`/`name` (a temporary name, then renamed), and only the
    KEEP newest files of its kind (its suffix) left; nothing if the directory is unusable."""
    with contextlib.suppress(OSError):
        where.mkdir(parents=True, exist_ok=True)
        # Not outputs.atomic_path: its umask dance is not for a worker thread beside others
        # that write files.
        fd, tmp = tempfile.mkstemp(prefix=".", suffix=".tmp", dir=where)
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(data)
            os.replace(tmp, where / name)
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
        keep_newest(where.glob(f"*{Path(name).suffix}"), KEEP)


class _Memo(MutableMapping[str, V]):
    """Layer digest → V, in memory for the session and (as `_save` decides) in files under
    `where`, found again by `_load`."""

    def __init__(self, where: Path) -> None:
        self.where = where
        self.memory: dict[str, V] = {}

    @abc.abstractmethod
    def _load(self, key: str) -> V | None: ...

    @abc.abstractmethod
    def _save(self, key: str, value: V) -> None: ...

    def __contains__(self, key: object) -> bool:
        if not isinstance(key, str):
            return False
        if key not in self.memory and (found := self._load(key)) is not None:
            self.memory[key] = found
        return key in self.memory

    def __getitem__(self, key: str) -> V:
        if key not in self:
            raise KeyError(key)
        return self.memory[key]

    def __setitem__(self, key: str, value: V) -> None:
        self.memory[key] = value
        self._save(key, value)

    def __delitem__(self, key: str) -> None:
        del self.memory[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self.memory)

    def __len__(self) -> int:
        return len(self.memory)


class Kept(_Memo[tuple[bytes, str]]):
    """Layer digest → (canonical gzip, diff_id)."""

    def _load(self, key: str) -> tuple[bytes, str] | None:
        with contextlib.suppress(OSError, ValueError):
            for path in self.where.glob(f"{_hex(key)}.*.gz"):
                _, diff_id, digest, _ = path.name.split(".")
                if (data := kept_bytes(path, digest)) is not None:
                    return data, f"sha256:{diff_id}"
        return None

    def _save(self, key: str, value: tuple[bytes, str]) -> None:
        data, diff_id = value
        name = f"{_hex(key)}.{_hex(diff_id)}.{hashlib.sha256(data).hexdigest()}.gz"
        _keep(self.where, name, data)


class Scanned(_Memo[Layer]):
    """Layer digest → its Layer (read_image's memo); on disk for a layer of SCANNED_FROM
    bytes or more."""

    def _load(self, key: str) -> Layer | None:
        with contextlib.suppress(OSError, ValueError, KeyError, TypeError, AttributeError):
            for path in self.where.glob(f"{_hex(key)}.*.json"):
                if (data := kept_bytes(path, path.name.split(".")[1])) is not None:
                    found = json.loads(data)
                    return Layer(
                        digest=key,
                        media_type=str(found["media_type"]),
                        compressed=int(found["compressed"]),
                        uncompressed=int(found["uncompressed"]),
                        files={str(k): int(v) for k, v in found["files"].items()},
                    )
        return None

    def _save(self, key: str, value: Layer) -> None:
        if value.uncompressed < SCANNED_FROM:
            return
        found = {
            "media_type": value.media_type,
            "compressed": value.compressed,
            "uncompressed": value.uncompressed,
            "files": value.files,
        }
        data = json.dumps(found, sort_keys=True).encode()
        _keep(self.where, f"{_hex(key)}.{hashlib.sha256(data).hexdigest()}.json", data)
