"""Make an exported OCI image tarball reproducible.

Dagger cannot yet (dagger/dagger#7721): the config's `created` and each history entry's are
the time the engine stored the layer, and a base layer depends on what the engine remembers:
its registry blob while the engine has it, a new tar written from the unpacked snapshot after
a restart without a prune. So the last step is ours:

- the base's layers are the base's own, as its registry serves them (pipeline.registry.bases):
  its manifest's descriptors (digest, size, media type) and blobs, its config's diff_ids and
  history, whatever the engine's export holds in their place;
- every layer we added is recompressed canonically (pipeline.image.canonical), so its digest
  depends only on its content;
- config `created` and every `history[].created` become SOURCE_DATE_EPOCH, and every
  `history[].created_by` a constant for its layer;
- config → manifest → index are re-serialised and re-hashed, and index.json names the image
  (`org.opencontainers.image.ref.name`);
- the tarball itself is written in a fixed order with fixed metadata (pipeline.image.layout).
"""

from __future__ import annotations

import json
from collections import ChainMap
from collections.abc import MutableMapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from pipeline.image import canonical
from pipeline.image.canonical import GZIP_LAYER, LAYER_TYPES
from pipeline.image.layout import Bases, Layout, base_of, dump, own_layers, write_tar
from pipeline.image.oci import (
    REF_NAME,
    BaseLayers,
    Layer,
    OCIError,
    digest_of,
    is_index,
    layer_of,
    plain,
)
from pipeline.provenance import rfc3339


class _Normaliser:
    def __init__(
        self,
        layout: Layout,
        epoch: int | None,
        memo: MutableMapping[str, tuple[bytes, str]],
        layers: MutableMapping[str, Layer],
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
        return {**descriptor, **self.put(dump(document))}

    def own_layer(self, layer: dict[str, Any]) -> tuple[dict[str, Any], str]:
        """A layer we added, recompressed canonically: its descriptor and diff_id."""
        if layer["mediaType"] not in LAYER_TYPES:
            raise OCIError(f"layer media type {layer['mediaType']} is not supported")
        if layer["digest"] not in self.memo:
            self.memo[layer["digest"]] = canonical.layer(self.old.blobs[layer["digest"]])
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
        base = base_of(config, self.bases)
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
        manifest["config"] = {**manifest["config"], **self.put(dump(config))}


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
    layers: MutableMapping[str, Layer] | None = None,
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
    with Layout.read(source) as layout:
        return _normalise(layout, destination, epoch, ref_name, memo, layers, bases or {})


def _normalise(
    layout: Layout,
    destination: Path,
    epoch: int | None,
    ref_name: str,
    memo: MutableMapping[str, tuple[bytes, str]] | None,
    layers: MutableMapping[str, Layer] | None,
    bases: Bases,
) -> str:
    memo = {} if memo is None else memo
    (top,) = layout.index["manifests"]  # Dagger exports one image per tarball
    missing = []
    for digest, diff_id in dict.fromkeys(own_layers(layout, top, bases)):
        if digest in memo:
            continue
        if diff_id in memo:  # compressed ahead of the export (canonical.prime), by its tar
            memo[digest] = memo[diff_id]
        else:
            missing.append(digest)

    def recompress(digest: str) -> None:
        memo[digest] = canonical.layer(layout.blobs[digest])

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
        "oci-layout": dump({"imageLayoutVersion": "1.0.0"}),
        "index.json": dump(index),
        **{
            f"blobs/sha256/{d.removeprefix('sha256:')}": b
            for d, b in sorted(normaliser.blobs.items())
        },
    }
    files.update(_docker_manifest(normaliser, top, ref_name))
    write_tar(destination, files, epoch or 0)
    return str(top["digest"])


def swap_last_layer(
    previous: Path,
    destination: Path,
    tar: bytes,
    *,
    epoch: int,
    ref_name: str,
    memo: MutableMapping[str, tuple[bytes, str]] | None = None,
    layers: MutableMapping[str, Layer] | None = None,
    bases: Bases | None = None,
) -> str:
    """Write to `destination` what normalise writes for an image that is `previous` (a
    single-platform image normalise wrote, with this epoch, name and bases) but for its last layer,
    whose tar is `tar`; return its digest. The image is `previous` made again with that layer
    (compressed, or taken from `memo` by the tar's digest) and the config's last diff_id set
    to the tar's: what the engine's export of it holds, normalised."""
    with Layout.read(previous) as layout:
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
            data = dump(document)
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
    return {"manifest.json": dump([entry])}
