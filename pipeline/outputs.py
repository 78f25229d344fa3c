"""Where files go. Result files are written whole or not at all: to a temporary name in the
destination's directory, renamed into place only when complete. What is kept between runs
(the schema, compressed and scanned layers, the bases' blobs) is under the user's cache
directory: a layer or blob is used only while its file hashes to its name; the newest kept."""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path

from pipeline import stopping
from pipeline.errors import OutputError


def cache_home(env: Mapping[str, str]) -> Path:
    """What is kept between runs: $XDG_CACHE_HOME/pipeline, else ~/.cache/pipeline."""
    base = env.get("XDG_CACHE_HOME", "")
    # The XDG spec: a relative path is invalid and is to be ignored.
    root = Path(base) if base and Path(base).is_absolute() else Path.home() / ".cache"
    return root / "pipeline"


def kept_bytes(path: Path, sha256: str) -> bytes | None:
    """The bytes of a file kept between runs, if they still hash to `sha256` (hex); the file is
    then the newest (kept longest). None if it is gone, unreadable, cut short or changed (then
    it is removed)."""
    with contextlib.suppress(OSError):
        data = path.read_bytes()
        if hashlib.sha256(data).hexdigest() == sha256:
            path.touch()
            return data
        path.unlink(missing_ok=True)
    return None


def keep_newest(paths: Iterable[Path], count: int) -> None:
    """Remove all but the `count` newest (last modified) of `paths`; nothing if they cannot be
    listed."""
    with contextlib.suppress(OSError):
        ordered = sorted(paths, key=lambda p: p.stat().st_mtime, reverse=True)
        for old in ordered[count:]:
            old.unlink(missing_ok=True)


def check_destination(path: Path, *, option: str) -> None:
    """Fail early (before any build) if `path` cannot receive a file."""
    if path.is_dir():
        raise OutputError(
            f"{option} {path} is a directory: give a file path, e.g. {path}/image.tar"
        )
    parent = path.parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise OutputError(f"{option} {path}: cannot create {parent} ({err.strerror})") from err
    if not parent.is_dir():
        raise OutputError(f"{option} {path}: {parent} is not a directory")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise OutputError(f"{option} {path}: cannot write in {parent} (permission denied)")


@contextlib.contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """Yield a temporary path beside `path`; on success rename it to `path`, else delete it."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as err:
        raise OutputError(f"cannot write {path}: {err.strerror}") from err
    os.close(fd)
    tmp = Path(name)
    # mkstemp makes the file 0600; a result file gets the mode any new file would get.
    umask = os.umask(0)
    os.umask(umask)
    tmp.chmod(0o666 & ~umask)
    try:
        with stopping.at_once(lambda: tmp.unlink(missing_ok=True)):
            yield tmp
            os.replace(tmp, path)
    except OSError as err:
        raise OutputError(f"cannot write {path}: {err.strerror or err}") from err
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def write_text(path: Path, text: str) -> None:
    """Write `text` to `path` atomically."""
    write_bytes(path, text.encode())


def write_bytes(path: Path, data: bytes) -> None:
    """Write `data` to `path` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
