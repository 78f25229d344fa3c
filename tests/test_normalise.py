"""pipeline.image.normalise, without the engine: a fixed OCI layout made here from constant
bytes normalises to a golden digest (so the pinned compressor, not the host's zlib, makes the
layer bytes), the memo spares recompression, an image with its last layer swapped is the
image normalised with that layer, the layers recompressed are known as read_image reads
them, and a base's layers are the registry's whether the engine exported its tar or a new
one (each platform its own). (Moved here from tests/test_reproducible.py with the module's
split.)"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from pipeline.image import canonical
from pipeline.image.diff import base_mismatches
from pipeline.image.normalise import normalise, swap_last_layer
from pipeline.image.oci import Layer, OCIError, read_image
from tests.layouts import (
    BASE_HISTORY,
    GOLDEN_DIFF_IDS,
    GOLDEN_DIGEST,
    GOLDEN_EPOCH,
    GOLDEN_LAYERS,
    PLAIN_LAYER,
    as_engine_sends,
    blob,
    exported,
    golden_tars,
    layer_digests,
    layer_tar,
    member,
    noise,
    registry_base,
    retarred,
    write_index,
    write_layout,
)


@pytest.mark.parametrize(
    "hows", [("gzip -1", "tar"), ("tar", "gzip -9"), ("gzip -9", "gzip -1")], ids="/".join
)
def test_golden_digest(tmp_path: Path, hows: tuple[str, str]) -> None:
    """However the engine compressed the layers, the normalised image has the committed digest:
    the same on every host, since the pinned libdeflate makes the layer bytes."""
    assert ["sha256:" + hashlib.sha256(t).hexdigest() for t in golden_tars()] == GOLDEN_DIFF_IDS
    out = tmp_path / "image.tar"
    digest = normalise(exported(tmp_path, hows), out, epoch=GOLDEN_EPOCH, ref_name="golden:1")
    assert layer_digests(out, digest) == GOLDEN_LAYERS
    assert digest == GOLDEN_DIGEST


def test_the_memo_spares_recompression(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    source = exported(tmp_path)
    memo: dict[str, tuple[bytes, str]] = {}
    first = normalise(source, tmp_path / "a.tar", epoch=GOLDEN_EPOCH, ref_name="g:1", memo=memo)
    index = json.loads(member(source, "index.json"))
    assert sorted(memo) == sorted(layer_digests(source, index["manifests"][0]["digest"]))

    def fail(data: bytes) -> tuple[bytes, str]:
        raise AssertionError("recompressed a layer the memo has")

    monkeypatch.setattr(canonical, "layer", fail)
    again = normalise(source, tmp_path / "b.tar", epoch=GOLDEN_EPOCH, ref_name="g:1", memo=memo)
    assert again == first
    assert (tmp_path / "a.tar").read_bytes() == (tmp_path / "b.tar").read_bytes()


def test_swapping_the_last_layer_is_normalising_the_image_that_holds_it(tmp_path: Path) -> None:
    base, app = golden_tars()
    other = golden_tars(binary=b"\x7fELF" + noise(120_000))[1]
    digests = {}
    for name, tars in (("a", [base, app]), ("b", [base, other])):
        layers = [
            as_engine_sends(tar, how) for tar, how in zip(tars, ("gzip -1", "tar"), strict=True)
        ]
        source = write_layout(tmp_path / f"exported-{name}.tar", layers, tars)
        out = tmp_path / f"{name}.tar"
        digests[name] = normalise(source, out, epoch=GOLDEN_EPOCH, ref_name="g:1")
    swapped = swap_last_layer(
        tmp_path / "a.tar", tmp_path / "swapped.tar", other, epoch=GOLDEN_EPOCH, ref_name="g:1"
    )
    assert swapped == digests["b"] != digests["a"]
    assert (tmp_path / "swapped.tar").read_bytes() == (tmp_path / "b.tar").read_bytes()


@pytest.mark.parametrize("hows", [("tar", "tar"), ("gzip -1", "tar")], ids=["tar", "gzip"])
def test_the_layers_recompressed_are_known_as_read_image_reads_them(
    tmp_path: Path, hows: tuple[str, str]
) -> None:
    """normalise(layers=...) gives each new layer as read_image would read it back (sizes and
    files too), so that the read-back inflates none of them; the bytes written are the same."""
    given: dict[str, Layer] = {}
    digest = normalise(
        exported(tmp_path, hows), tmp_path / "a.tar", epoch=GOLDEN_EPOCH, ref_name="g:1",
        layers=given,
    )  # fmt: skip
    assert digest == GOLDEN_DIGEST
    read = read_image(tmp_path / "a.tar")
    want = {layer.digest: layer for layer in read.manifests[0].layers}
    assert sorted(given) == sorted(want) == sorted(GOLDEN_LAYERS)
    for key, layer in want.items():
        assert given[key] == layer
        assert given[key].files == layer.files
    again = read_image(tmp_path / "a.tar", given)
    assert again == read


def test_the_base_layers_are_the_registrys_whatever_the_engine_exports(tmp_path: Path) -> None:
    """An engine that still has the base's blob exports its tar; one restarted without a prune
    exports a new tar of the same files. Both normalise to one image, whose base layer is the
    registry's blob (digest, size, media type), with the base config's diff_id and history."""
    base_tar, app = golden_tars()
    again = retarred(base_tar)
    assert again != base_tar
    base = registry_base(tmp_path, base_tar)
    digests, images = [], []
    for name, first in (("kept", base_tar), ("retarred", again)):
        source = write_layout(
            tmp_path / f"{name}-export.tar", [(PLAIN_LAYER, first), (PLAIN_LAYER, app)],
            [first, app],
        )  # fmt: skip
        out = tmp_path / f"{name}.tar"
        digests.append(
            normalise(source, out, epoch=GOLDEN_EPOCH, ref_name="g:1", bases={"linux/amd64": base})
        )
        images.append(out)
    assert digests[0] == digests[1]
    assert images[0].read_bytes() == images[1].read_bytes()
    manifest = json.loads(blob(images[0], digests[0]))
    assert manifest["layers"][0] == base.layers[0]
    assert blob(images[0], base.layers[0]["digest"]) == base.blob(base.layers[0]["digest"])
    assert manifest["layers"][1]["digest"] == GOLDEN_LAYERS[1]  # ours: canonical, as before
    config = json.loads(blob(images[0], manifest["config"]["digest"]))
    assert config["rootfs"]["diff_ids"] == [base.diff_ids[0], GOLDEN_DIFF_IDS[1]]
    assert config["history"][:2] == BASE_HISTORY
    assert [h["created_by"] for h in config["history"][2:]] == [f"layer {GOLDEN_DIFF_IDS[1]}"]
    assert base_mismatches(images[0], {"linux/amd64": base}) == []
    # read back as the registry would serve it: sizes from the blobs themselves
    read = read_image(images[0])
    assert read.manifests[0].layers[0].compressed == base.layers[0]["size"]


def test_each_platform_takes_its_own_bases_layers(tmp_path: Path) -> None:
    """An image of two platforms on a multi-platform base: each platform's image holds the
    layers of the base's manifest for that platform; one with no base for it is refused."""
    base_tar, app = golden_tars()
    arm_tar = layer_tar({"etc/os-release": b"ID=golden-arm64\n"})
    bases = {
        "linux/amd64": registry_base(tmp_path, base_tar),
        "linux/arm64": registry_base(tmp_path, arm_tar, "linux/arm64"),
    }
    source = write_index(
        tmp_path / "export.tar", {"amd64": base_tar, "arm64": retarred(arm_tar)}, app
    )
    out = tmp_path / "image.tar"
    normalise(source, out, epoch=GOLDEN_EPOCH, ref_name="g:1", bases=bases)
    assert base_mismatches(out, bases) == []
    read = {m.platform: m for m in read_image(out).manifests}
    assert read["linux/arm64"].layers[0].digest == bases["linux/arm64"].layers[0]["digest"]
    assert read["linux/amd64"].layers[0].digest == bases["linux/amd64"].layers[0]["digest"]
    with pytest.raises(OCIError, match="no base layers for its linux/arm64 image"):
        normalise(source, tmp_path / "no.tar", epoch=GOLDEN_EPOCH, ref_name="g:1",
                  bases={"linux/amd64": bases["linux/amd64"]})  # fmt: skip
