"""Read an OCI image tarball (what `Container.export` writes): its digest, platforms, layers
and sizes. Dagger has no image-size API (dagger/dagger#11185), so sizes come from here.

Compressed size is what a registry stores and a pull transfers: the layer blobs, as
`skopeo inspect` lists them. Uncompressed size is what `docker image ls` shows: the layers'
tar streams after decompression.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import tarfile
import zlib
from collections.abc import MutableMapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import IO, Any, Protocol

REF_NAME = "org.opencontainers.image.ref.name"  # the annotation naming an image in a layout
INDEX = "application/vnd.oci.image.index.v1+json"
MANIFEST = "application/vnd.oci.image.manifest.v1+json"
INDEX_TYPES = frozenset({INDEX, "application/vnd.docker.distribution.manifest.list.v2+json"})


class OCIError(ValueError):
    """The file is not an OCI image tarball we can read."""


@dataclass(frozen=True)
class Layer:
    digest: str
    media_type: str
    compressed: int
    uncompressed: int
    files: dict[str, int] = field(default_factory=dict, repr=False, compare=False)


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
    size: int = 0  # bytes of the top manifest or index, for descriptors that point at it

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


@dataclass(frozen=True)
class BaseLayers:
    """A base image's layers for one platform, as its registry serves them: the descriptors
    its manifest lists (digest, size, media type, as they are), the diff_ids and history its
    config lists, and where each blob is on this machine (pipeline.registry.bases fetched them)."""

    ref: str  # the base, pinned: docker.io/library/busybox:1.35@sha256:…
    platform: str  # os/architecture[/variant]
    layers: tuple[dict[str, Any], ...]
    diff_ids: tuple[str, ...]
    history: tuple[dict[str, Any], ...]
    blobs: dict[str, Path] = field(repr=False, compare=False)

    def blob(self, digest: str) -> bytes:
        """A layer's blob, checked against its digest (OCIError if the file changed)."""
        try:
            data = self.blobs[digest].read_bytes()
        except (KeyError, OSError) as err:
            raise OCIError(f"{self.ref}: its layer {digest[:19]} is gone ({err})") from None
        if digest_of(data) != digest:
            raise OCIError(f"{self.ref}: its layer {digest[:19]} changed on disk")
        return data


def digest_of(data: bytes) -> str:
    """The OCI digest of `data`: sha256, in hex."""
    return "sha256:" + hashlib.sha256(data).hexdigest()


def file_digest(path: Path) -> str:
    """The OCI digest of the file at `path`, read a MiB at a time."""
    with path.open("rb") as file:
        return "sha256:" + hashlib.file_digest(file, "sha256").hexdigest()


def is_index(document: dict[str, Any], descriptor: dict[str, Any] | None = None) -> bool:
    """Whether `document` (pointed at by `descriptor`, whose media type counts where the
    document names none) is an index of manifests rather than one image's manifest."""
    media_type = document.get("mediaType", (descriptor or {}).get("mediaType"))
    return media_type in INDEX_TYPES or "manifests" in document


def plain(blob: bytes) -> bytes:
    """A layer's tar, from its blob, gzipped or not."""
    return gzip.decompress(blob) if blob[:2] == b"\x1f\x8b" else blob


def same_platform(found: str, wanted: str) -> bool:
    """Whether two `os/architecture[/variant]` name one platform: linux/arm64 is
    linux/arm64/v8, so a variant counts only where both name one."""
    f, w = found.split("/"), wanted.split("/")
    return f[:2] == w[:2] and (len(f) < 3 or len(w) < 3 or f[2] == w[2])


def platform_of(document: dict[str, Any]) -> str:
    """`os/architecture[/variant]` of an index entry's platform, or of an image config."""
    parts = [document.get("os", ""), document.get("architecture", ""), document.get("variant", "")]
    return "/".join(str(p) for p in parts if p)


def _blob_name(digest: str) -> str:
    algorithm, _, hexdigest = digest.partition(":")
    return f"blobs/{algorithm}/{hexdigest}"


class _Readable(Protocol):
    def read(self, size: int = -1, /) -> bytes: ...


class _Counting(io.RawIOBase):
    """A read-only stream that counts the bytes read through it."""

    def __init__(self, inner: _Readable) -> None:
        self.inner = inner
        self.count = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        data = self.inner.read(len(buffer))
        buffer[: len(data)] = data
        self.count += len(data)
        return len(data)


def _scan_layer(stream: IO[bytes], media_type: str) -> tuple[int, dict[str, int]]:
    """The layer's tar stream length after decompression, and its entries: path → size
    (0 for directories and links)."""
    if media_type.endswith("zstd"):
        raise OCIError(f"zstd layers are not supported here ({media_type})")
    plain: _Readable = stream
    if media_type.endswith("gzip"):
        plain = gzip.GzipFile(fileobj=stream)
    counted = _Counting(plain)
    files: dict[str, int] = {}
    with tarfile.open(fileobj=counted, mode="r|") as tar:
        for member in tar:
            files[member.name.removeprefix("./").rstrip("/")] = (
                member.size if member.isfile() else 0
            )
    while counted.read(1 << 20):
        pass  # the end-of-archive blocks and padding count too
    return counted.count, files


def layer_of(tar: bytes, *, digest: str, media_type: str, compressed: int) -> Layer:
    """What read_image learns of a layer blob (`digest`, `compressed` bytes) whose tar stream
    is `tar`: for a layer just compressed here, without inflating it again."""
    uncompressed, files = _scan_layer(io.BytesIO(tar), "application/vnd.oci.image.layer.v1.tar")
    return Layer(digest, media_type, compressed, uncompressed, files)


class _Archive:
    def __init__(self, tar: tarfile.TarFile, memo: MutableMapping[str, Layer]) -> None:
        self._tar = tar
        self.memo = memo
        self._members = {m.name.removeprefix("./"): m for m in tar.getmembers() if m.isfile()}

    def read(self, name: str) -> bytes:
        return self._open(name).read()

    def _open(self, name: str) -> IO[bytes]:
        member = self._members.get(name)
        stream = self._tar.extractfile(member) if member else None
        if stream is None:
            raise OCIError(f"{name} is missing from the tarball")
        return stream

    def blob(self, digest: str) -> bytes:
        """A blob, checked against its digest."""
        data = self.read(_blob_name(digest))
        if digest_of(data) != digest:
            raise OCIError(f"blob {digest} does not match its digest")
        return data

    def json_blob(self, digest: str) -> tuple[bytes, dict[str, Any]]:
        data = self.blob(digest)
        return data, json.loads(data)

    def layer(self, descriptor: dict[str, Any]) -> Layer:
        digest, media_type = descriptor["digest"], descriptor["mediaType"]
        if digest in self.memo:  # the blob's bytes read before: as this manifest names them
            return replace(
                self.memo[digest], media_type=media_type, compressed=int(descriptor["size"])
            )
        uncompressed, files = _scan_layer(self._open(_blob_name(digest)), media_type)
        self.memo[digest] = Layer(
            digest=digest,
            media_type=media_type,
            compressed=int(descriptor["size"]),
            uncompressed=uncompressed,
            files=files,
        )
        return self.memo[digest]


def _platform(descriptor: dict[str, Any], config: dict[str, Any]) -> str:
    return platform_of(descriptor.get("platform") or config)


def _manifests(archive: _Archive, descriptor: dict[str, Any]) -> list[Manifest]:
    _, manifest = archive.json_blob(descriptor["digest"])
    if is_index(manifest, descriptor):
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
        top = descriptors[0]
        return ImageInfo(top["digest"], top["mediaType"], manifests, int(top["size"]))
    return ImageInfo(
        digest_of(index_bytes),
        "application/vnd.oci.image.index.v1+json",
        manifests,
        len(index_bytes),
    )


def read_blob(path: Path, digest: str) -> bytes:
    """One blob of the OCI layout in the tarball at `path` (a manifest, as pushed), checked
    against its digest (OCIError if missing or changed)."""
    try:
        with tarfile.open(path) as tar:
            return _Archive(tar, {}).blob(digest)
    except (tarfile.TarError, OSError) as err:
        raise OCIError(f"{path}: not a readable OCI image tarball ({err})") from err


def read_image(path: Path, memo: MutableMapping[str, Layer] | None = None) -> ImageInfo:
    """Read the OCI layout in the tarball at `path`. Layers already in `memo` (by digest) are
    not read again; those read are added to it."""
    try:
        with tarfile.open(path) as tar:
            return _read_layout(_Archive(tar, {} if memo is None else memo))
    except OCIError as err:
        raise OCIError(f"{path}: {err}") from err
    except (tarfile.TarError, OSError, KeyError, EOFError, json.JSONDecodeError, zlib.error) as err:
        raise OCIError(f"{path}: not a readable OCI image tarball ({err})") from err
