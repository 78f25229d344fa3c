"""Make an exported OCI image tarball reproducible, and tell two apart.

Dagger cannot yet (dagger/dagger#7721): the config's `created` and each history entry's are
the time the engine stored the layer, and a base layer depends on what the engine remembers:
its registry blob while the engine has it, a new tar written from the unpacked snapshot after
a restart without a prune. So the last step is ours:

- the base's layers are the base's own, as its registry serves them (pipeline.registry.bases): its
  manifest's descriptors (digest, size, media type) and blobs, its config's diff_ids and
  history, whatever the engine's export holds in their place;
- every layer we added is recompressed canonically, so its digest depends only on its
  content: one gzip member with a fixed header around libdeflate's deflate stream at level 6.
  libdeflate comes bundled in the `deflate` wheel, pinned exactly in pyproject.toml, so the
  bytes do not depend on the host: the system's zlib does not give the same ones everywhere
  (Fedora ships zlib-ng-compat, whose deflate output differs from zlib's). Upgrading
  `deflate` is a deliberate change of every image digest;
- config `created` and every `history[].created` become SOURCE_DATE_EPOCH, and every
  `history[].created_by` a constant for its layer;
- config → manifest → index are re-serialised and re-hashed, and index.json names the image
  (`org.opencontainers.image.ref.name`);
- the tarball itself is written in a fixed order with fixed metadata.
"""

from __future__ import annotations

import hashlib
import io
import json
import struct
import tarfile
import zlib
from collections import ChainMap
from collections.abc import Iterator, Mapping, MutableMapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import deflate

from pipeline.image.oci import (
    REF_NAME,
    BaseLayers,
    Layer,
    OCIError,
    digest_of,
    is_index,
    layer_of,
    plain,
    platform_of,
    same_platform,
)
from pipeline.provenance import rfc3339

GZIP_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
LAYER_TYPES = frozenset(
    {
        GZIP_LAYER,
        "application/vnd.oci.image.layer.v1.tar",
        "application/vnd.docker.image.rootfs.diff.tar.gzip",
    }
)


Bases = Mapping[str, BaseLayers]  # platform (os/architecture[/variant]) → its base's layers


def _dump(document: object) -> bytes:
    """Canonical JSON: the key order as given, no spaces."""
    return json.dumps(document, separators=(",", ":"), ensure_ascii=False).encode()


@dataclass
class _Layout:
    """An OCI layout in memory: index.json and blobs by digest."""

    index: dict[str, Any]
    blobs: dict[str, bytes]

    @classmethod
    def read(cls, path: Path) -> _Layout:
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


LEVEL = 6
"""libdeflate's level for the layers: smaller than zlib's 6 and 9, and several times faster."""
GZIP_HEADER = bytes((0x1F, 0x8B, 8, 0, 0, 0, 0, 0, 0, 0xFF))
"""The 10 bytes before every layer's deflate stream: magic, method deflate, no flags (so no
file name, comment or extra field), mtime 0, no extra flags, OS 255 (unknown). The same bytes
as Python's GzipFile wrote at level 6 with mtime 0 and no name."""


def _gzip(tar: bytes) -> bytes:
    """`tar` as one gzip member whose every byte follows from `tar` and the pinned libdeflate:
    the fixed header, the raw deflate stream, CRC-32 and length (RFC 1952)."""
    stream = deflate.deflate_compress(tar, LEVEL)  # lets go of the GIL while it compresses
    # CRC-32 is one function whichever library computes it; zlib's lets go of the GIL too.
    trailer = struct.pack("<II", zlib.crc32(tar), len(tar) & 0xFFFFFFFF)
    return b"".join((GZIP_HEADER, stream, trailer))


def _canonical_layer(data: bytes) -> tuple[bytes, str]:
    """The layer recompressed canonically, and its diff_id (digest of the tar)."""
    tar = plain(data)
    return _gzip(tar), digest_of(tar)


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
    expected in an image, compressed beside the export (normalise takes it from `memo`, by
    its digest uncompressed, as the engine's uncompressed export names it)."""
    digest = digest_of(tar)
    if digest not in memo:
        memo[digest] = _gzip(tar), digest


def _base_of(config: dict[str, Any], bases: Bases) -> BaseLayers | None:
    """The base of the image whose config is `config`, by its platform (None: no base)."""
    platform = platform_of(config)
    found = [b for p, b in bases.items() if same_platform(p, platform)]
    if bases and not found:
        raise OCIError(f"no base layers for its {platform} image (only {', '.join(bases)})")
    return found[0] if found else None


def _own_layers(layout: _Layout, descriptor: dict[str, Any], bases: Bases) -> Iterator[str]:
    """The digests of the layers under `descriptor` (a manifest, or an index of them) that
    the base did not give."""
    document = layout.json(descriptor["digest"])
    if is_index(document, descriptor):
        for manifest in document["manifests"]:
            yield from _own_layers(layout, manifest, bases)
    else:
        base = _base_of(layout.json(document["config"]["digest"]), bases)
        skipped = len(base.layers) if base else 0
        yield from (layer["digest"] for layer in document["layers"][skipped:])


class _Normaliser:
    def __init__(
        self,
        layout: _Layout,
        epoch: int | None,
        memo: MutableMapping[str, tuple[bytes, str]],
        layers: dict[str, Layer],
        bases: Bases,
    ) -> None:
        self.old = layout
        self.memo = memo
        self.layers = layers
        self.bases = bases
        self.blobs: dict[str, bytes] = {}
        self.created = None if epoch is None else rfc3339(epoch)

    def put(self, data: bytes) -> dict[str, Any]:
        digest = digest_of(data)
        self.blobs[digest] = data
        return {"digest": digest, "size": len(data)}

    def descriptor(self, descriptor: dict[str, Any]) -> dict[str, Any]:
        """Normalise what `descriptor` points at; return the new descriptor."""
        document = self.old.json(descriptor["digest"])
        if is_index(document, descriptor):
            document["manifests"] = [self.descriptor(d) for d in document["manifests"]]
        else:
            self.manifest(document)
        return {**descriptor, **self.put(_dump(document))}

    def own_layer(self, layer: dict[str, Any]) -> tuple[dict[str, Any], str]:
        """A layer we added, recompressed canonically: its descriptor and diff_id."""
        if layer["mediaType"] not in LAYER_TYPES:
            raise OCIError(f"layer media type {layer['mediaType']} is not supported")
        if layer["digest"] not in self.memo:
            self.memo[layer["digest"]] = _canonical_layer(self.old.blobs[layer["digest"]])
        data, diff_id = self.memo[layer["digest"]]
        new = self.put(data)
        if new["digest"] not in self.layers:  # as read_image would read it back
            tar = plain(self.old.blobs[layer["digest"]])
            self.layers[new["digest"]] = layer_of(
                tar, digest=new["digest"], media_type=GZIP_LAYER, compressed=new["size"]
            )
        return {**layer, "mediaType": GZIP_LAYER, **new}, diff_id

    def base_layers(
        self, base: BaseLayers, exported: list[dict[str, Any]], diff_ids: list[str]
    ) -> list[dict[str, Any]]:
        """The base's layers as its registry serves them, in place of the `exported` ones
        (whatever the engine wrote: the registry's tar, or one written anew)."""
        if len(exported) < len(base.layers):
            raise OCIError(
                f"the image has {len(exported)} layers, fewer than its base {base.ref} "
                f"({len(base.layers)}): it is not built on that base"
            )
        for layer, old, old_diff_id, diff_id in zip(
            base.layers, exported, diff_ids, base.diff_ids, strict=False
        ):
            blob = self.old.blobs.get(layer["digest"]) or base.blob(layer["digest"])
            self.blobs[layer["digest"]] = blob
            if old_diff_id == diff_id and layer["digest"] not in self.layers:
                # The engine's tar is the base's own: read it, not the blob, for read_image.
                self.layers[layer["digest"]] = layer_of(
                    plain(self.old.blobs[old["digest"]]),
                    digest=layer["digest"],
                    media_type=layer["mediaType"],
                    compressed=int(layer["size"]),
                )
        return [dict(layer) for layer in base.layers]

    def manifest(self, manifest: dict[str, Any]) -> None:
        config = self.old.json(manifest["config"]["digest"])
        exported = list(manifest["layers"])
        base = _base_of(config, self.bases)
        count = len(base.layers) if base else 0
        old_diff_ids = list(config.get("rootfs", {}).get("diff_ids", []))
        if len(old_diff_ids) != len(exported):
            raise OCIError("the layers do not match the config's diff_ids")
        layers = self.base_layers(base, exported, old_diff_ids) if base else []
        diff_ids = list(base.diff_ids) if base else []
        for layer in exported[count:]:
            new, diff_id = self.own_layer(layer)
            layers.append(new)
            diff_ids.append(diff_id)
        manifest["layers"] = layers
        config["rootfs"]["diff_ids"] = diff_ids
        ours = _after_base(config.get("history", []), count)
        if len([h for h in ours if not h.get("empty_layer")]) != len(diff_ids) - count:
            raise OCIError("the config's history does not match its layers")
        if self.created is not None:
            config["created"] = self.created
            own = iter(diff_ids[count:])
            for entry in ours:
                entry["created"] = self.created
                if not entry.get("empty_layer"):
                    # Engines describe one layer differently from run to run ("import image
                    # layer …", "rehydrated persisted snapshot"): one text per layer, from
                    # what it holds.
                    entry["created_by"] = f"layer {next(own)}"
        if base is not None:
            config["history"] = [*(dict(h) for h in base.history), *ours]
        manifest["config"] = {**manifest["config"], **self.put(_dump(config))}


def _after_base(history: list[dict[str, Any]], count: int) -> list[dict[str, Any]]:
    """The history entries of the layers after the first `count` (the base's), from the
    first that made a layer: the base's own empty entries (its CMD, say) stay the base's."""
    seen = 0
    for index, entry in enumerate(history):
        if not entry.get("empty_layer"):
            if seen == count:
                return history[index:]
            seen += 1
    return []


def normalise(
    source: Path,
    destination: Path,
    *,
    epoch: int | None,
    ref_name: str,
    memo: MutableMapping[str, tuple[bytes, str]] | None = None,
    layers: dict[str, Layer] | None = None,
    bases: Bases | None = None,
) -> str:
    """Write the reproducible form of the image tarball `source` to `destination`; return
    the digest of the image (its top manifest or index). Each platform's image built on a
    base holds that base's layers from `bases` (by platform). Without an epoch, the config's
    times stay the engine's (naive stays naive), the rest is done all the same. Layers already
    recompressed are taken from `memo` (by their digest in `source`: a dict, or
    pipeline.image.layer_cache's files); each layer of the image is added to `layers` as
    pipeline.image.oci.read_image would read it (by its new digest), so that reading the image back
    inflates none of them again."""
    layout = _Layout.read(source)
    return _normalise(layout, destination, epoch, ref_name, memo, layers, bases or {})


def _normalise(
    layout: _Layout,
    destination: Path,
    epoch: int | None,
    ref_name: str,
    memo: MutableMapping[str, tuple[bytes, str]] | None,
    layers: dict[str, Layer] | None,
    bases: Bases,
) -> str:
    memo = {} if memo is None else memo
    (top,) = layout.index["manifests"]  # Dagger exports one image per tarball
    missing = [d for d in dict.fromkeys(_own_layers(layout, top, bases)) if d not in memo]

    def recompress(digest: str) -> None:
        memo[digest] = _canonical_layer(layout.blobs[digest])

    # zlib's inflate and libdeflate let go of the GIL: the layers in parallel.
    with ThreadPoolExecutor() as pool:
        list(pool.map(recompress, missing))
    normaliser = _Normaliser(layout, epoch, memo, {} if layers is None else layers, bases)
    top = normaliser.descriptor(top)
    top["annotations"] = {**top.get("annotations", {}), REF_NAME: ref_name}
    index = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [top],
    }
    files = {
        "oci-layout": _dump({"imageLayoutVersion": "1.0.0"}),
        "index.json": _dump(index),
        **{
            f"blobs/sha256/{d.removeprefix('sha256:')}": b
            for d, b in sorted(normaliser.blobs.items())
        },
    }
    files.update(_docker_manifest(normaliser, top, ref_name))
    _write_tar(destination, files, epoch or 0)
    return str(top["digest"])


def swap_last_layer(
    previous: Path,
    destination: Path,
    tar: bytes,
    *,
    epoch: int,
    ref_name: str,
    memo: MutableMapping[str, tuple[bytes, str]] | None = None,
    layers: dict[str, Layer] | None = None,
    bases: Bases | None = None,
) -> str:
    """Write to `destination` what normalise writes for an image that is `previous` (a
    single-platform image normalise wrote, with this epoch, name and bases) but for its last layer,
    whose tar is `tar`; return its digest. The image is `previous` made again with that layer
    (compressed, or taken from `memo` by the tar's digest) and the config's last diff_id set
    to the tar's: what the engine's export of it holds, normalised."""
    layout = _Layout.read(previous)
    (top,) = layout.index["manifests"]
    manifest = layout.json(top["digest"])
    if is_index(manifest, top):
        raise OCIError(f"{previous}: an image of several platforms")
    config = layout.json(manifest["config"]["digest"])
    kept = {  # the layers that stay are canonical already: themselves, with their diff_ids
        layer["digest"]: (layout.blobs[layer["digest"]], diff_id)
        for layer, diff_id in zip(manifest["layers"], config["rootfs"]["diff_ids"], strict=True)
    }
    digest = digest_of(tar)
    layout.blobs[digest] = tar
    config["rootfs"]["diff_ids"][-1] = digest
    manifest["layers"][-1] = {
        **manifest["layers"][-1],
        "mediaType": "application/vnd.oci.image.layer.v1.tar",
        "digest": digest,
        "size": len(tar),
    }

    def put(document: dict[str, Any]) -> dict[str, Any]:
        data = _dump(document)
        layout.blobs[digest_of(data)] = data
        return {"digest": digest_of(data), "size": len(data)}

    manifest["config"] = {**manifest["config"], **put(config)}
    layout.index["manifests"] = [{**top, **put(manifest)}]
    memo = ChainMap(kept, {} if memo is None else memo)
    return _normalise(layout, destination, epoch, ref_name, memo, layers, bases or {})


def _docker_manifest(
    normaliser: _Normaliser, top: dict[str, Any], ref_name: str
) -> dict[str, bytes]:
    """manifest.json, so that `docker load` (which predates OCI layouts) takes the tarball:
    for a single-platform image only."""
    if is_index(top):
        return {}
    manifest = json.loads(normaliser.blobs[top["digest"]])
    path = "blobs/sha256/"
    entry = {
        "Config": path + manifest["config"]["digest"].removeprefix("sha256:"),
        "RepoTags": [ref_name] if ":" in ref_name else [],
        "Layers": [path + layer["digest"].removeprefix("sha256:") for layer in manifest["layers"]],
    }
    return {"manifest.json": _dump([entry])}


def _write_tar(destination: Path, files: dict[str, bytes], epoch: int) -> None:
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


def _flatten(value: object, prefix: str = "") -> dict[str, object]:
    """{"a": {"b": [1]}} → {"a.b.0": 1}: so that a difference names its field."""
    items: list[tuple[str, object]] = []
    if isinstance(value, dict):
        items = [(str(key), inner) for key, inner in value.items()]
    elif isinstance(value, list):
        items = [(str(number), inner) for number, inner in enumerate(value)]
    else:
        return {prefix: value}
    flat: dict[str, object] = {}
    for key, inner in items:
        flat.update(_flatten(inner, f"{prefix}.{key}" if prefix else key))
    return flat


def _layer_entries(data: bytes) -> dict[str, tuple[object, ...]]:
    """Each entry of a layer: what could differ (type, size, mode, owner, time, link, content)."""
    entries: dict[str, tuple[object, ...]] = {}
    with tarfile.open(fileobj=io.BytesIO(plain(data))) as tar:
        for member in tar:
            stream = tar.extractfile(member) if member.isfile() else None
            content = hashlib.sha256(stream.read()).hexdigest() if stream else ""
            entries[member.name] = (
                member.type,
                member.size,
                member.mode,
                member.uid,
                member.gid,
                member.mtime,
                member.linkname,
                content,
            )
    return entries


_FIELDS = ("type", "size", "mode", "uid", "gid", "mtime", "link", "content")


def _images(layout: _Layout, descriptor: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """platform → image manifest."""
    document = layout.json(descriptor["digest"])
    if is_index(document, descriptor):
        found: dict[str, dict[str, Any]] = {}
        for inner in document["manifests"]:
            found.update(_images(layout, inner))
        return found
    config = layout.json(document["config"]["digest"])
    return {f"{config.get('os')}/{config.get('architecture')}": document}


def base_mismatches(tarball: Path, bases: Bases) -> list[str]:
    """Where the image in `tarball` does not hold its base's layers as the base's registry
    serves them (`bases`, by platform): each layer whose descriptor (digest, size, media
    type) is not the base manifest's, or whose diff_id is not the base config's. Empty when
    every platform's image holds its base as it is (and when there are no bases: scratch)."""
    layout = _Layout.read(tarball)
    found = []
    for platform, manifest in _images(layout, layout.index["manifests"][0]).items():
        config = layout.json(manifest["config"]["digest"])
        base = _base_of(config, bases)
        if base is None:
            continue
        layers, diff_ids = manifest["layers"], config.get("rootfs", {}).get("diff_ids", [])
        for number, want in enumerate(base.layers):
            got = layers[number] if number < len(layers) else {}
            wrong = [key for key in ("digest", "size", "mediaType") if got.get(key) != want[key]]
            if number >= len(diff_ids) or diff_ids[number] != base.diff_ids[number]:
                wrong.append("diff_id")
            if wrong:
                found.append(
                    f"{platform}: layer {number} ({str(got.get('digest', 'none'))[:19]}) is not "
                    f"the base's ({want['digest'][:19]} of {base.ref}): its {', '.join(wrong)} "
                    "differ"
                )
    return found


def differences(first: Path, second: Path) -> list[str]:
    """What differs between two image tarballs: platforms, config fields, layers and, in a
    layer, which files and how. Empty when the images are the same."""
    a, b = _Layout.read(first), _Layout.read(second)
    if a.index == b.index:
        return []
    found: list[str] = []
    images_a, images_b = (_images(x, x.index["manifests"][0]) for x in (a, b))
    for platform in sorted(set(images_a) | set(images_b)):
        if platform not in images_a or platform not in images_b:
            found.append(f"{platform}: only in one of the two builds")
            continue
        ma, mb = images_a[platform], images_b[platform]
        ca, cb = (_flatten(x.json(m["config"]["digest"])) for x, m in ((a, ma), (b, mb)))
        for key in sorted(set(ca) | set(cb)):
            if ca.get(key) != cb.get(key):
                found.append(f"{platform}: config field {key}: {ca.get(key)!r} vs {cb.get(key)!r}")
        for number, (la, lb) in enumerate(zip(ma["layers"], mb["layers"], strict=False)):
            if la["digest"] == lb["digest"]:
                continue
            ea, eb = _layer_entries(a.blobs[la["digest"]]), _layer_entries(b.blobs[lb["digest"]])
            changed = []
            for name in sorted(set(ea) | set(eb)):
                if ea.get(name) != eb.get(name):
                    if name not in ea or name not in eb:
                        changed.append(f"{name} (only in one)")
                    else:
                        what = [
                            f for f, x, y in zip(_FIELDS, ea[name], eb[name], strict=True) if x != y
                        ]
                        changed.append(f"{name} ({', '.join(what)})")
            detail = "; ".join(changed) if changed else "same files, different compression"
            found.append(
                f"{platform}: layer {number} ({la['digest'][:19]} vs {lb['digest'][:19]}): {detail}"
            )
        if len(ma["layers"]) != len(mb["layers"]):
            found.append(f"{platform}: {len(ma['layers'])} vs {len(mb['layers'])} layers")
        for key in sorted(set(ma.get("annotations", {})) | set(mb.get("annotations", {}))):
            va, vb = ma.get("annotations", {}).get(key), mb.get("annotations", {}).get(key)
            if va != vb:
                found.append(f"{platform}: manifest annotation {key}: {va!r} vs {vb!r}")
    return found or ["the indexes differ, though no image, layer or config field does"]
