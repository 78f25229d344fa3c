"""Layers compressed canonically: a layer's digest depends only on its content.

Every layer we add to an image is one gzip member with a fixed header around libdeflate's
deflate stream at level 6. libdeflate comes bundled in the `deflate` wheel, pinned exactly in
pyproject.toml, so the bytes do not depend on the host: the system's zlib does not give the
same ones everywhere (Fedora ships zlib-ng-compat, whose deflate output differs from zlib's).
Upgrading `deflate` is a deliberate change of every image digest. Also here: the tar the
engine writes for a layer of one file, foreseen from the file (file_layer), and a layer
compressed ahead of the export that needs it (prime).
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import MutableMapping

import deflate

from pipeline.image.oci import digest_of, plain

GZIP_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
LAYER_TYPES = frozenset(
    {
        GZIP_LAYER,
        "application/vnd.oci.image.layer.v1.tar",
        "application/vnd.docker.image.rootfs.diff.tar.gzip",
    }
)

LEVEL = 6
"""libdeflate's level for the layers: smaller than zlib's 6 and 9, and several times faster."""
GZIP_HEADER = bytes((0x1F, 0x8B, 8, 0, 0, 0, 0, 0, 0, 0xFF))
"""The 10 bytes before every layer's deflate stream: magic, method deflate, no flags (so no
file name, comment or extra field), mtime 0, no extra flags, OS 255 (unknown). The same bytes
as Python's GzipFile wrote at level 6 with mtime 0 and no name."""


def gzip_layer(tar: bytes) -> bytes:
    """`tar` as one gzip member whose every byte follows from `tar` and the pinned libdeflate:
    the fixed header, the raw deflate stream, CRC-32 and length (RFC 1952)."""
    stream = deflate.deflate_compress(tar, LEVEL)  # lets go of the GIL while it compresses
    # CRC-32 is one function whichever library computes it; zlib's lets go of the GIL too.
    trailer = struct.pack("<II", zlib.crc32(tar), len(tar) & 0xFFFFFFFF)
    return b"".join((GZIP_HEADER, stream, trailer))


def layer(data: bytes) -> tuple[bytes, str]:
    """The layer recompressed canonically, and its diff_id (digest of the tar)."""
    tar = plain(data)
    return gzip_layer(tar), digest_of(tar)


def _ustar_header(name: str, mode: int, size: int, mtime: int, kind: bytes) -> bytes:
    """One header block as Go's archive/tar writes it in USTAR format: octal fields padded
    with zeros and ended by NUL, no owner names, the checksum as six digits, NUL, space."""

    def octal(value: int, width: int) -> bytes:
        return f"{value:0{width - 1}o}".encode() + b"\0"

    block = bytearray(512)
    block[: len(name)] = name.encode()
    block[100:148] = octal(mode, 8) + octal(0, 8) + octal(0, 8) + octal(size, 12) + octal(mtime, 12)
    block[148:156] = b" " * 8  # counted as spaces while the checksum is computed
    block[156:157] = kind
    block[257:265] = b"ustar\x0000"
    block[329:345] = octal(0, 8) + octal(0, 8)  # device major and minor
    block[148:156] = f"{sum(block):06o}".encode() + b"\0 "
    return bytes(block)


def file_layer(path: str, data: bytes, *, mtime: int) -> bytes | None:
    """The tar the engine writes for a layer that holds only the file `path` (mode 0755) and
    its parent directories, every time at `mtime`: what pipeline.recipe.variants.slim_image adds to
    the base. None where USTAR cannot hold it (a long name, a huge file)."""
    parts = path.strip("/").split("/")
    names = [*(f"{'/'.join(parts[: n + 1])}/" for n in range(len(parts) - 1)), "/".join(parts)]
    if any(len(name.encode()) > 100 for name in names) or len(data) >= 8**11:
        return None
    headers = [_ustar_header(name, 0o755, 0, mtime, b"5") for name in names[:-1]]
    headers.append(_ustar_header(names[-1], 0o755, len(data), mtime, b"0"))
    padding = -len(data) % 512
    return b"".join((*headers, data, bytes(padding + 1024)))  # two zero blocks end it


def prime(memo: MutableMapping[str, tuple[bytes, str]], tar: bytes) -> None:
    """Compress the layer `tar` now, as normalise would once the engine exports it: a layer
    expected in an image, compressed beside the export (normalise takes it from `memo` by
    its digest uncompressed: the layer's diff_id in the exported image's config)."""
    digest = digest_of(tar)
    if digest not in memo:
        memo[digest] = gzip_layer(tar), digest
