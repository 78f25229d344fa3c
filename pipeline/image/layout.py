"""An OCI image layout in memory, as Container.export writes it and as we write it back:
index.json and blobs by digest, read from a tarball; canonical JSON; a tarball written in a
fixed order with fixed metadata; and the base an image is made on, by its platform."""

from __future__ import annotations

import io
import json
import tarfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline.image.oci import BaseLayers, OCIError, platform_of, same_platform

Bases = Mapping[str, BaseLayers]  # platform (os/architecture[/variant]) → its base's layers


def dump(document: object) -> bytes:
    """Canonical JSON: the key order as given, no spaces."""
    return json.dumps(document, separators=(",", ":"), ensure_ascii=False).encode()


@dataclass
class Layout:
    """An OCI layout in memory: index.json and blobs by digest."""

    index: dict[str, Any]
    blobs: dict[str, bytes]

    @classmethod
    def read(cls, path: Path) -> Layout:
        blobs: dict[str, bytes] = {}
        index: dict[str, Any] | None = None
        with tarfile.open(path) as tar:
            for member in tar:
                name = member.name.removeprefix("./")
                stream = tar.extractfile(member) if member.isfile() else None
                if stream is None:
                    continue
                if name == "index.json":
                    index = json.loads(stream.read())
                elif name.startswith("blobs/sha256/"):
                    blobs["sha256:" + name.rsplit("/", 1)[1]] = stream.read()
        if index is None:
            raise OCIError(f"{path}: no index.json")
        return cls(index, blobs)

    def json(self, digest: str) -> dict[str, Any]:
        loaded: dict[str, Any] = json.loads(self.blobs[digest])
        return loaded


def base_of(config: dict[str, Any], bases: Bases) -> BaseLayers | None:
    """The base of the image whose config is `config`, by its platform (None: no base)."""
    platform = platform_of(config)
    found = [b for p, b in bases.items() if same_platform(p, platform)]
    if bases and not found:
        raise OCIError(f"no base layers for its {platform} image (only {', '.join(bases)})")
    return found[0] if found else None


def write_tar(destination: Path, files: dict[str, bytes], epoch: int) -> None:
    """A tarball whose bytes depend only on `files`: fixed order, owner, mode and time."""
    with tarfile.open(destination, "w", format=tarfile.PAX_FORMAT) as tar:
        for directory in ("blobs", "blobs/sha256"):
            info = tarfile.TarInfo(directory)
            info.type, info.mode, info.mtime = tarfile.DIRTYPE, 0o755, epoch
            tar.addfile(info)
        for name in sorted(files):
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(files[name]), 0o644, epoch
            tar.addfile(info, io.BytesIO(files[name]))
