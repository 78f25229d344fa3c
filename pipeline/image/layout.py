"""An OCI image layout, as Container.export writes it and as we write it back: index.json and
blobs by digest, read from a tarball (each blob when it is asked for); canonical JSON; a
tarball written in a fixed order with fixed metadata; and the base an image is made on, by its
platform."""

from __future__ import annotations

import contextlib
import io
import json
import os
import tarfile
from collections.abc import Iterator, Mapping, MutableMapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from pipeline.image.oci import BaseLayers, OCIError, is_index, platform_of, same_platform

Bases = Mapping[str, BaseLayers]  # platform (os/architecture[/variant]) → its base's layers


def dump(document: object) -> bytes:
    """Canonical JSON: the key order as given, no spaces."""
    return json.dumps(document, separators=(",", ":"), ensure_ascii=False).encode()


class _Blobs(MutableMapping[str, bytes]):
    """A layout tarball's blobs by digest, each read from the file when asked for: of an
    engine's export of a Go image, normalise reads its own layers and the base's layer only
    where it needs them, and never the whole tarball into memory. The file stays open while
    they are read (a file put in its place meanwhile is not the one indexed). Blobs set here
    are held in memory."""

    def __init__(self, file: BinaryIO, places: dict[str, tuple[int, int]]) -> None:
        self.file = file
        self.places = places  # digest → (offset, size) in the file
        self.held: dict[str, bytes] = {}

    def __getitem__(self, digest: str) -> bytes:
        if digest in self.held:
            return self.held[digest]
        offset, size = self.places[digest]
        parts, done = [], 0
        while done < size:  # one read returns at most 2 GiB on Linux
            part = os.pread(self.file.fileno(), size - done, offset + done)  # threads: no seek
            if not part:
                raise OCIError(f"{self.file.name}: blob {digest} is cut short")
            parts.append(part)
            done += len(part)
        return parts[0] if len(parts) == 1 else b"".join(parts)

    def __contains__(self, digest: object) -> bool:  # without reading the blob
        return digest in self.held or digest in self.places

    def __setitem__(self, digest: str, data: bytes) -> None:
        self.held[digest] = data

    def __delitem__(self, digest: str) -> None:
        found = self.held.pop(digest, None) is not None
        if self.places.pop(digest, None) is None and not found:
            raise KeyError(digest)

    def __iter__(self) -> Iterator[str]:
        return iter(self.held.keys() | self.places.keys())

    def __len__(self) -> int:
        return len(self.held.keys() | self.places.keys())


@dataclass
class Layout:
    """An OCI layout: index.json and blobs by digest."""

    index: dict[str, Any]
    blobs: MutableMapping[str, bytes]

    @classmethod
    @contextlib.contextmanager
    def read(cls, path: Path) -> Iterator[Layout]:
        """The layout in the (uncompressed) tarball at `path`, its blobs read from it while
        the block lasts."""
        places: dict[str, tuple[int, int]] = {}
        index: dict[str, Any] | None = None
        with path.open("rb") as file:
            try:
                with tarfile.open(fileobj=file, mode="r:") as tar:
                    for member in tar:
                        name = member.name.removeprefix("./")
                        if not member.isfile():
                            continue
                        if name == "index.json":
                            stream = tar.extractfile(member)
                            index = json.loads(stream.read()) if stream else None
                        elif name.startswith("blobs/sha256/"):
                            digest = "sha256:" + name.rsplit("/", 1)[1]
                            places[digest] = (member.offset_data, member.size)
            except tarfile.TarError as err:  # not a tarball, or one cut short
                raise OCIError(f"{path}: not an image tarball ({err})") from err
            if index is None:
                raise OCIError(f"{path}: no index.json")
            yield cls(index, _Blobs(file, places))

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


def own_layers(
    layout: Layout, descriptor: dict[str, Any], bases: Bases
) -> Iterator[tuple[str, str]]:
    """The digests and diff_ids of the layers under `descriptor` (a manifest, or an index of
    them) that the base did not give."""
    document = layout.json(descriptor["digest"])
    if is_index(document, descriptor):
        for manifest in document["manifests"]:
            yield from own_layers(layout, manifest, bases)
    else:
        config = layout.json(document["config"]["digest"])
        base = base_of(config, bases)
        skipped = len(base.layers) if base else 0
        diff_ids = config["rootfs"]["diff_ids"][skipped:]
        for layer, diff_id in zip(document["layers"][skipped:], diff_ids, strict=True):
            yield layer["digest"], diff_id


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
