"""Test-side readers of OCI tarballs: the files each layer holds. Independent of pipeline.image.oci,
so the tests do not check the code with itself."""

from __future__ import annotations

import gzip
import io
import json
import tarfile
from pathlib import Path
from typing import Any


def _blob(tar: tarfile.TarFile, digest: str) -> bytes:
    member = tar.extractfile("blobs/" + digest.replace(":", "/"))
    assert member is not None, f"{digest} missing"
    return member.read()


def manifests(path: Path) -> list[dict[str, Any]]:
    """The image manifests in the tarball (descending into nested indexes)."""
    with tarfile.open(path) as tar:
        index = json.loads(tar.extractfile("index.json").read())  # type: ignore[union-attr]
        found: list[dict[str, Any]] = []
        todo = list(index["manifests"])
        while todo:
            descriptor = todo.pop(0)
            doc = json.loads(_blob(tar, descriptor["digest"]))
            if "manifests" in doc:
                todo += doc["manifests"]
            else:
                doc["_platform"] = descriptor.get("platform")
                doc["_config"] = json.loads(_blob(tar, doc["config"]["digest"]))
                found.append(doc)
        return found


def layer_files(path: Path, manifest: dict[str, Any]) -> list[dict[str, int | str]]:
    """Every regular file in the manifest's layers: layer index, path, size, mode, mtime."""
    files: list[dict[str, int | str]] = []
    with tarfile.open(path) as tar:
        for number, layer in enumerate(manifest["layers"]):
            data = _blob(tar, layer["digest"])
            if data[:2] == b"\x1f\x8b":
                data = gzip.decompress(data)
            with tarfile.open(fileobj=io.BytesIO(data)) as inner:
                for member in inner.getmembers():
                    if member.isfile():
                        files.append(
                            {
                                "layer": number,
                                "path": member.name.removeprefix("./"),
                                "size": member.size,
                                "mode": member.mode,
                                "mtime": int(member.mtime),
                            }
                        )
    return files


def file_bytes(path: Path, manifest: dict[str, Any], name: str) -> bytes:
    """The contents of `name` in the topmost layer that has it."""
    with tarfile.open(path) as tar:
        for layer in reversed(manifest["layers"]):
            data = _blob(tar, layer["digest"])
            if data[:2] == b"\x1f\x8b":
                data = gzip.decompress(data)
            with tarfile.open(fileobj=io.BytesIO(data)) as inner:
                try:
                    member = inner.extractfile(name)
                except KeyError:
                    continue
                if member is not None:
                    return member.read()
    raise AssertionError(f"{name} not in the image")
