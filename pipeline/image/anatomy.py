"""Where an image's bytes go: the base's layers and ours, the biggest layer, and whether the
image holds the Go toolchain, Go source or a shell. Pure functions over pipeline.image.oci."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from pipeline.image.oci import Layer, Manifest

# Where Go toolchains live in images: the official layout, Debian's, and the module cache.
_TOOLCHAIN_TREES = ("usr/local/go/", "usr/lib/go", "go/pkg/mod/", "root/go/pkg/mod/")
_GO_COMMAND = re.compile(r"(^|/)go/bin/go$|^usr/lib/go-[\d.]+/bin/go$")
_SHELLS = frozenset({"bin/sh", "usr/bin/sh", "bin/bash", "usr/bin/bash", "bin/ash"})


@dataclass(frozen=True)
class Anatomy:
    """One image, taken apart (for one platform's manifest)."""

    base_layers: int
    base_bytes: int  # uncompressed bytes of the base's layers
    own_bytes: int  # uncompressed bytes of the layers the pipeline added
    toolchain: bool
    source: bool
    shell: bool
    binary_bytes: int | None  # the program's file, where the image has it
    biggest_layer: str  # "sha256:… (what made it)"
    biggest_layer_bytes: int


def _base_layer_count(image: Manifest, theirs: Sequence[str]) -> int:
    """How many of the image's layers are the base's: the common prefix of diff_ids."""
    ours = image.config.get("rootfs", {}).get("diff_ids", [])
    count = 0
    for mine, its in zip(ours, theirs, strict=False):
        if mine != its:
            break
        count += 1
    return count


def _created_by(image: Manifest, index: int) -> str:
    """What made the layer, as its history entry says: the base's own entry for a base layer
    (an imported one has only a comment, "Imported from -")."""
    history = [h for h in image.config.get("history", []) if not h.get("empty_layer")]
    if index < len(history):
        entry = history[index]
        return str(entry.get("created_by") or entry.get("comment") or "").strip()
    return ""


def dissect(image: Manifest, base: Sequence[str], binary_path: str) -> Anatomy:
    """Take `image` apart against the diff_ids of its `base` (none: scratch); `binary_path`
    is the program."""
    files: dict[str, int] = {}
    for layer in image.layers:
        files.update(layer.files)
    paths = set(files)
    count = _base_layer_count(image, base)
    biggest_index, biggest = max(enumerate(image.layers), key=lambda pair: pair[1].uncompressed)
    return Anatomy(
        base_layers=count,
        base_bytes=sum(layer.uncompressed for layer in image.layers[:count]),
        own_bytes=sum(layer.uncompressed for layer in image.layers[count:]),
        toolchain=any(_GO_COMMAND.search(p) for p in paths),
        source=any(p.endswith(".go") and not p.startswith(_TOOLCHAIN_TREES) for p in paths),
        shell=bool(paths & _SHELLS),
        binary_bytes=files.get(binary_path.lstrip("/")),
        biggest_layer=_describe(biggest, _created_by(image, biggest_index)),
        biggest_layer_bytes=biggest.uncompressed,
    )


def _describe(layer: Layer, created_by: str) -> str:
    short = layer.digest.removeprefix("sha256:")[:12]
    return f"{short} ({created_by})" if created_by else short
