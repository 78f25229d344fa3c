"""Read an OCI image tarball (what `Container.export` writes): its digest, platforms, layers
and sizes. Dagger has no image-size API (dagger/dagger#11185), so sizes come from here.

Compressed size is what a registry stores and a pull transfers: the layer blobs, as
`skopeo inspect` lists them. Uncompressed size is what `docker image ls` shows: the layers'
tar streams after decompression.
"""

from __future__ import annotations

import hashlib
import json
import tarfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

INDEX_TYPES = frozenset(
    {
        "application/vnd.oci.image.index.v1+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
    }
)


class OCIError(ValueError):
    """The file is not an OCI image tarball we can read."""


@dataclass(frozen=True)
class Layer:
    digest: str
    media_type: str
    compressed: int
    uncompressed: int


@dataclass(frozen=True)
class Manifest:
    """One platform's image: its manifest digest, config and layers."""

    digest: str
    platform: str
    config_digest: str
    config: dict[str, Any]
    layers: tuple[Layer, ...]

    @property
    def compressed(self) -> int:
        return sum(layer.compressed for layer in self.layers)

    @property
    def uncompressed(self) -> int:
        return sum(layer.uncompressed for layer in self.layers)


@dataclass(frozen=True)
class ImageInfo:
    """An image tarball read back: its digest (the manifest's for one platform, the index's
    for several), and one Manifest per platform."""

    digest: str
    media_type: str
    manifests: tuple[Manifest, ...]

    @property
    def compressed(self) -> int:
        """Bytes of distinct layer blobs across all platforms."""
        return sum(
            {layer.digest: layer.compressed for m in self.manifests for layer in m.layers}.values()
        )

    @property
    def uncompressed(self) -> int:
        return sum(
            {
                layer.digest: layer.uncompressed for m in self.manifests for layer in m.layers
            }.values()
        )


def _digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _blob_name(digest: str) -> str:
    algorithm, _, hexdigest = digest.partition(":")
    return f"blobs/{algorithm}/{hexdigest}"


def _uncompressed_size(stream: IO[bytes], media_type: str) -> int:
    """Length of the layer's tar stream after decompression (gzip or none)."""
    if media_type.endswith("zstd"):
        raise OCIError(f"zstd layers are not supported here ({media_type})")
    head = stream.read(2)
    if head == b"\x1f\x8b":
        decompressor = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
        total = len(decompressor.decompress(head))
        while chunk := stream.read(1 << 20):
            total += len(decompressor.decompress(chunk))
            # Concatenated gzip members: start over on the rest.
            while decompressor.eof and decompressor.unused_data:
                rest = decompressor.unused_data
                decompressor = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
                total += len(decompressor.decompress(rest))
        return total + len(decompressor.flush())
    total = len(head)
    while chunk := stream.read(1 << 20):
        total += len(chunk)
    return total


class _Archive:
    def __init__(self, tar: tarfile.TarFile) -> None:
        self._tar = tar
        self._members = {m.name.removeprefix("./"): m for m in tar.getmembers() if m.isfile()}

    def read(self, name: str) -> bytes:
        return self._open(name).read()

    def _open(self, name: str) -> IO[bytes]:
        member = self._members.get(name)
        stream = self._tar.extractfile(member) if member else None
        if stream is None:
            raise OCIError(f"{name} is missing from the tarball")
        return stream

    def json_blob(self, digest: str) -> tuple[bytes, dict[str, Any]]:
        data = self.read(_blob_name(digest))
        if _digest(data) != digest:
            raise OCIError(f"blob {digest} does not match its digest")
        return data, json.loads(data)

    def layer(self, descriptor: dict[str, Any]) -> Layer:
        digest, media_type = descriptor["digest"], descriptor["mediaType"]
        return Layer(
            digest=digest,
            media_type=media_type,
            compressed=int(descriptor["size"]),
            uncompressed=_uncompressed_size(self._open(_blob_name(digest)), media_type),
        )


def _platform(descriptor: dict[str, Any], config: dict[str, Any]) -> str:
    platform = descriptor.get("platform") or config
    parts = [platform.get("os", ""), platform.get("architecture", ""), platform.get("variant", "")]
    return "/".join(p for p in parts if p)


def _manifests(archive: _Archive, descriptor: dict[str, Any]) -> list[Manifest]:
    _, manifest = archive.json_blob(descriptor["digest"])
    if manifest.get("mediaType", descriptor.get("mediaType")) in INDEX_TYPES:
        return [m for d in manifest["manifests"] for m in _manifests(archive, d)]
    _, config = archive.json_blob(manifest["config"]["digest"])
    return [
        Manifest(
            digest=descriptor["digest"],
            platform=_platform(descriptor, config),
            config_digest=manifest["config"]["digest"],
            config=config,
            layers=tuple(archive.layer(d) for d in manifest["layers"]),
        )
    ]


def _read_layout(archive: _Archive) -> ImageInfo:
    index_bytes = archive.read("index.json")
    descriptors = json.loads(index_bytes).get("manifests") or []
    if not descriptors:
        raise OCIError("index.json lists no image")
    manifests = tuple(m for d in descriptors for m in _manifests(archive, d))
    if len(descriptors) == 1:
        return ImageInfo(descriptors[0]["digest"], descriptors[0]["mediaType"], manifests)
    return ImageInfo(_digest(index_bytes), "application/vnd.oci.image.index.v1+json", manifests)


def read_image(path: Path) -> ImageInfo:
    """Read the OCI layout in the tarball at `path`."""
    try:
        with tarfile.open(path) as tar:
            return _read_layout(_Archive(tar))
    except OCIError as err:
        raise OCIError(f"{path}: {err}") from err
    except (tarfile.TarError, OSError, KeyError, json.JSONDecodeError, zlib.error) as err:
        raise OCIError(f"{path}: not a readable OCI image tarball ({err})") from err
