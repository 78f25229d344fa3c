"""Fixed OCI layouts made here from constant bytes, as the engine exports them, and a base's
layer as its registry serves it: what the image room's tests (canonical, normalise, diff,
layer_cache) normalise, with the golden digests the pinned compressor makes; and a tiny image
to push (tiny_layout), for the registry room's tests."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import tarfile
from pathlib import Path
from typing import Any

from pipeline.image.canonical import GZIP_LAYER
from pipeline.image.oci import REF_NAME, BaseLayers

MANIFEST = "application/vnd.oci.image.manifest.v1+json"
CONFIG = "application/vnd.oci.image.config.v1+json"
PLAIN_LAYER = "application/vnd.oci.image.layer.v1.tar"
GOLDEN_EPOCH = 1700000000
# The digests that the compressor makes: a new version of `deflate` (libdeflate) changes the
# layer's and so the image's. Update them only with a deliberate upgrade of it.
GOLDEN_DIFF_IDS = [  # the layers' tars: made here, the compressor has no say in them
    "sha256:1ebbf11d90c0b14fe3f3626ac87e7c1cf82abdf2c436e631bed7e3571c9b4791",
    "sha256:b7424ee050aee406635dc8afb38da411e0aff709cb0e59a01c49d64dc8ce6428",
]
GOLDEN_LAYERS = [
    "sha256:ea365d80056935da9c447b707b971b306b0cac4acaf0ef6bdb9772b100604663",
    "sha256:3801d6d813403dd67256f4320f0458ecd9c7250a41b03c6e7e4f904946742eba",
]
# Changed once on purpose: every history entry now takes the epoch, empty ones too (the
# layout's ENV entry kept the engine's time before), as the base's layers became the base's.
GOLDEN_DIGEST = "sha256:456d84cc9b44da15cb0c0a9a41679373612ae665b6eaa71e9a6ebfbcc1fb781b"


def layer_tar(files: dict[str, bytes]) -> bytes:
    """A layer's tar, its bytes fixed by `files`: order, owner, mode and time are constants."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(data), 0o755, 1234567890
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def noise(size: int) -> bytes:
    """`size` bytes that deflate cannot shrink, the same every time (a SHA-256 chain)."""
    blocks = (hashlib.sha256(n.to_bytes(4, "big")).digest() for n in range(size // 32 + 1))
    return b"".join(blocks)[:size]


def golden_tars(binary: bytes = b"\x7fELF" + noise(150_000)) -> list[bytes]:
    """Two layers, as a small image on a base has: a base's text files, then a 'binary' (half
    noise, half repeated text: several deflate blocks, stored and compressed)."""
    base = layer_tar(
        {
            "etc/os-release": b'NAME="golden"\nID=golden\nVERSION_ID=1\n',
            "etc/motd": b"reproducible images, byte for byte\n" * 50,
        }
    )
    app = layer_tar({"myapp/helloworld": binary + b"Hello World\x00" * 12_000})
    return [base, app]


def as_engine_sends(tar: bytes, how: str) -> tuple[str, bytes]:
    """A layer as an engine may export it: uncompressed, or gzip of some level, time, name."""
    if how == "tar":
        return PLAIN_LAYER, tar
    level, mtime = {"gzip -1": (1, 1712345678), "gzip -9": (9, 1)}[how]
    buffer = io.BytesIO()
    with gzip.GzipFile("layer.tar", "wb", level, buffer, mtime) as out:
        out.write(tar)
    return GZIP_LAYER, buffer.getvalue()


def _put(blobs: dict[str, bytes], media_type: str, data: bytes) -> dict[str, object]:
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    blobs[digest] = data
    return {"mediaType": media_type, "digest": digest, "size": len(data)}


def _image(
    blobs: dict[str, bytes], layers: list[tuple[str, bytes]], tars: list[bytes], arch: str
) -> dict[str, object]:
    """One platform's image as Dagger exports it, its blobs put in `blobs`: the layers (media
    type, blob) whose tars are `tars`, a config with engine times and history texts, a
    manifest; the manifest's descriptor."""
    stored = "2024-05-06T07:08:09.123456789Z"
    config = {
        "created": stored,
        "architecture": arch,
        "os": "linux",
        "config": {"Entrypoint": ["/myapp/helloworld"], "WorkingDir": "/myapp"},
        "rootfs": {
            "type": "layers",
            "diff_ids": ["sha256:" + hashlib.sha256(tar).hexdigest() for tar in tars],
        },
        "history": [
            {"created": stored, "created_by": "import image layer"},
            {"created": stored, "created_by": "ENV PATH", "empty_layer": True},
            {"created": stored, "created_by": "rehydrated persisted snapshot"},
        ],
    }
    manifest = {
        "schemaVersion": 2,
        "mediaType": MANIFEST,
        "config": _put(blobs, CONFIG, json.dumps(config, indent=2).encode()),
        "layers": [_put(blobs, media_type, blob) for media_type, blob in layers],
    }
    descriptor = _put(blobs, MANIFEST, json.dumps(manifest, indent=2).encode())
    return {**descriptor, "platform": {"os": "linux", "architecture": arch}}


def _write(path: Path, blobs: dict[str, bytes], top: dict[str, object]) -> Path:
    index = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [top],
    }
    files = {
        "oci-layout": b'{"imageLayoutVersion": "1.0.0"}',
        "index.json": json.dumps(index).encode(),
        **{f"blobs/sha256/{d.removeprefix('sha256:')}": b for d, b in blobs.items()},
    }
    with tarfile.open(path, "w") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def write_layout(path: Path, layers: list[tuple[str, bytes]], tars: list[bytes]) -> Path:
    """An image tarball as Dagger exports one: the layers (media type, blob) whose tars are
    `tars`, a config with engine times and history texts, a manifest, an index."""
    blobs: dict[str, bytes] = {}
    top = _image(blobs, layers, tars, "amd64")
    del top["platform"]
    return _write(path, blobs, top)


def write_index(path: Path, firsts: dict[str, bytes], app: bytes) -> Path:
    """An image of several platforms as Dagger exports one: for each architecture, an image
    whose layers are its first tar and `app` (uncompressed), all listed in one index."""
    blobs: dict[str, bytes] = {}
    images = [
        _image(blobs, [(PLAIN_LAYER, first), (PLAIN_LAYER, app)], [first, app], arch)
        for arch, first in firsts.items()
    ]
    index = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": images,
    }
    top = _put(blobs, "application/vnd.oci.image.index.v1+json", json.dumps(index).encode())
    return _write(path, blobs, top)


def exported(tmp_path: Path, hows: tuple[str, str] = ("gzip -1", "tar")) -> Path:
    """The golden image as an engine might export it, each layer compressed as `hows` says."""
    tars = golden_tars()
    layers = [as_engine_sends(tar, how) for tar, how in zip(tars, hows, strict=True)]
    return write_layout(tmp_path / f"exported-{'-'.join(hows)}.tar", layers, tars)


def member(image: Path, name: str) -> bytes:
    with tarfile.open(image) as tar:
        stream = tar.extractfile(name)
        assert stream is not None
        return stream.read()


def blob(image: Path, digest: str) -> bytes:
    return member(image, "blobs/sha256/" + digest.removeprefix("sha256:"))


def layer_digests(image: Path, digest: str) -> list[str]:
    return [layer["digest"] for layer in json.loads(blob(image, digest))["layers"]]


DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar.gzip"
BASE_HISTORY: list[dict[str, Any]] = [
    {"created": "2020-01-02T03:04:05Z", "created_by": "/bin/sh -c #(nop) ADD file:abc in / "},
    {"created": "2020-01-02T03:04:06Z", "created_by": '/bin/sh -c #(nop)  CMD ["sh"]',
     "empty_layer": True},
]  # fmt: skip


def registry_base(tmp_path: Path, tar: bytes, platform: str = "linux/amd64") -> BaseLayers:
    """The golden base layer as a registry serves it: gzip as the base's maker wrote it (not
    ours), a Docker media type, its blob a file as pipeline.registry.bases keeps it."""
    buffer = io.BytesIO()
    with gzip.GzipFile("", "wb", 9, buffer, mtime=1577934245) as out:
        out.write(tar)
    data = buffer.getvalue()
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    path = tmp_path / digest.removeprefix("sha256:")
    path.write_bytes(data)
    return BaseLayers(
        ref=f"127.0.0.1:5000/library/golden@{digest}",
        platform=platform,
        layers=({"mediaType": DOCKER_LAYER, "digest": digest, "size": len(data)},),
        diff_ids=("sha256:" + hashlib.sha256(tar).hexdigest(),),
        history=tuple(BASE_HISTORY),
        blobs={digest: path},
    )


def retarred(tar: bytes) -> bytes:
    """The same files in a new tar, as an engine writes a layer anew from its snapshot after
    a restart: another order, other headers (another diff_id)."""
    buffer = io.BytesIO()
    with (
        tarfile.open(fileobj=io.BytesIO(tar)) as old,
        tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as new,
    ):
        members = [(m, old.extractfile(m)) for m in old.getmembers()]
        for info, stream in sorted(members, key=lambda pair: pair[0].name):
            assert stream is not None
            info.name = f"./{info.name}"
            new.addfile(info, io.BytesIO(stream.read()))
    return buffer.getvalue()


def digested(data: bytes) -> tuple[str, bytes]:
    """The digest of `data`, and `data`."""
    return "sha256:" + hashlib.sha256(data).hexdigest(), data


def tiny_layout(path: Path, ref_name: str, content: bytes) -> str:
    """An OCI layout tarball at `path` with one image (one gzip layer holding `content`),
    named `ref_name`; the image manifest's digest."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as tar:
        info = tarfile.TarInfo("hello.txt")
        info.size = len(content)
        tar.addfile(info, io.BytesIO(content))
    layer = gzip.compress(raw.getvalue(), mtime=0)
    config = json.dumps(
        {
            "architecture": "amd64",
            "os": "linux",
            "rootfs": {"type": "layers", "diff_ids": [digested(raw.getvalue())[0]]},
        }
    ).encode()
    blobs = dict([digested(layer), digested(config)])
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": digested(config)[0],
                "size": len(config),
            },
            "layers": [
                {
                    "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                    "digest": digested(layer)[0],
                    "size": len(layer),
                }
            ],
        }
    ).encode()
    digest, _ = digested(manifest)
    blobs[digest] = manifest
    top = {"mediaType": MANIFEST, "digest": digest, "size": len(manifest)}
    _write(path, blobs, {**top, "annotations": {REF_NAME: ref_name}})
    return digest
