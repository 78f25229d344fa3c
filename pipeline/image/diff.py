"""Tell two image tarballs apart, naming what differs (platform, config field, layer, file
and which of its fields), and an image that does not hold its base's layers as the base's
registry serves them. What `verify` prints when two builds differ."""

from __future__ import annotations

import hashlib
import io
import tarfile
from pathlib import Path
from typing import Any

from pipeline.image.layout import Bases, Layout, base_of
from pipeline.image.oci import is_index, plain


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


def _images(layout: Layout, descriptor: dict[str, Any]) -> dict[str, dict[str, Any]]:
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
    with Layout.read(tarball) as layout:
        return _mismatches(layout, bases)


def _mismatches(layout: Layout, bases: Bases) -> list[str]:
    found = []
    for platform, manifest in _images(layout, layout.index["manifests"][0]).items():
        config = layout.json(manifest["config"]["digest"])
        base = base_of(config, bases)
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
    with Layout.read(first) as a, Layout.read(second) as b:
        return _differences(a, b)


def _differences(a: Layout, b: Layout) -> list[str]:
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
