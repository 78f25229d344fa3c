"""Image sizes, read the same way for every side: from the registry each side pushed to.

Compressed is what the registry stores (the layer blobs, as their descriptors give them);
uncompressed is the length of each layer's tar stream after decompression (what unpacking
reads), the same measure as `pipeline/image/oci.py` applies to our tarballs.
"""

from __future__ import annotations

import json
import tarfile
import urllib.request
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

MANIFEST_TYPES = (
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
)
INDEX_TYPES = frozenset(MANIFEST_TYPES[1::2])
TIMEOUT = 60.0


@dataclass(frozen=True)
class ImageSize:
    ref: str
    uncompressed: int
    compressed: int
    layers: int


def _get(url: str, accept: str | None = None) -> urllib.request.Request:
    headers = {"Accept": accept} if accept else {}
    return urllib.request.Request(url, headers=headers)


def _manifest(registry: str, repo: str, reference: str, platform: str) -> dict[str, Any]:
    url = f"http://{registry}/v2/{repo}/manifests/{reference}"
    with urllib.request.urlopen(_get(url, ", ".join(MANIFEST_TYPES)), timeout=TIMEOUT) as answer:
        manifest: dict[str, Any] = json.load(answer)
        media_type = manifest.get("mediaType") or answer.headers.get("Content-Type", "")
    if media_type in INDEX_TYPES:
        os_, _, arch = platform.partition("/")
        chosen = next(
            (
                m
                for m in manifest["manifests"]
                if m.get("platform", {}).get("os") == os_
                and m.get("platform", {}).get("architecture") == arch
            ),
            None,
        )
        if chosen is None:
            raise ValueError(f"{registry}/{repo}:{reference} has no {platform} image")
        return _manifest(registry, repo, chosen["digest"], platform)
    return manifest


def _uncompressed(registry: str, repo: str, layer: dict[str, Any]) -> int:
    """Stream the blob and count its bytes after decompression."""
    url = f"http://{registry}/v2/{repo}/blobs/{layer['digest']}"
    gzipped = str(layer.get("mediaType", "")).endswith("gzip")
    inflate = zlib.decompressobj(16 + zlib.MAX_WBITS) if gzipped else None
    count = 0
    with urllib.request.urlopen(_get(url), timeout=TIMEOUT) as answer:
        while chunk := answer.read(1 << 20):
            count += len(inflate.decompress(chunk)) if inflate else len(chunk)
    if inflate:
        count += len(inflate.flush())
    return count


def registry_image(ref: str, platform: str) -> ImageSize:
    """The size of `REGISTRY/REPO:TAG` (plain HTTP, as the test bed's registry speaks)."""
    registry, _, rest = ref.partition("/")
    repo, _, tag = rest.rpartition(":")
    manifest = _manifest(registry, repo, tag, platform)
    layers = manifest["layers"]
    return ImageSize(
        ref=ref,
        uncompressed=sum(_uncompressed(registry, repo, layer) for layer in layers),
        compressed=sum(int(layer["size"]) for layer in layers),
        layers=len(layers),
    )


def docker_save_uncompressed(tarball: Path) -> int:
    """The layers' tar streams in a `docker save` tarball (legacy format: <id>/layer.tar)."""
    with tarfile.open(tarball) as tar:
        stream = tar.extractfile("manifest.json")
        if stream is None:
            raise ValueError(f"{tarball}: no manifest.json; not a `docker save` tarball")
        manifest = json.load(stream)
        members = {m.name: m for m in tar.getmembers()}
        return sum(members[layer].size for layer in manifest[0]["Layers"])
