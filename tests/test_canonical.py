"""pipeline.image.canonical, without the engine: the layers of a fixed OCI layout made here
normalise to plain gzip with a fixed header, and a layer primed before the export is not
compressed again. (Moved here from tests/test_reproducible.py with the module's split.)"""

from __future__ import annotations

import gzip
import io
import json
import struct
import zlib
from pathlib import Path

import pytest

from pipeline.image import canonical
from pipeline.image.canonical import GZIP_LAYER, prime
from pipeline.image.normalise import normalise
from tests.layouts import (
    GOLDEN_DIFF_IDS,
    GOLDEN_EPOCH,
    blob,
    exported,
    golden_tars,
    layer_digests,
    member,
)


def test_layers_are_plain_gzip_with_a_fixed_header(tmp_path: Path) -> None:
    out = tmp_path / "image.tar"
    digest = normalise(exported(tmp_path), out, epoch=GOLDEN_EPOCH, ref_name="golden:1")
    manifest = json.loads(blob(out, digest))
    assert [layer["mediaType"] for layer in manifest["layers"]] == [GZIP_LAYER, GZIP_LAYER]
    for layer, tar in zip(manifest["layers"], golden_tars(), strict=True):
        data = blob(out, layer["digest"])
        assert layer["size"] == len(data)
        # magic, deflate, no flags (no name), mtime 0, no extra flags, OS 255 (unknown)
        assert data[:10] == bytes.fromhex("1f8b 0800 00000000 00ff")
        assert struct.unpack("<II", data[-8:]) == (zlib.crc32(tar), len(tar))
        assert gzip.decompress(data) == tar
        with gzip.GzipFile(fileobj=io.BytesIO(data)) as unzipped:
            assert unzipped.read() == tar
            assert unzipped.mtime == 0
        assert len(data) < len(tar)
    config = json.loads(blob(out, manifest["config"]["digest"]))
    assert config["rootfs"]["diff_ids"] == GOLDEN_DIFF_IDS


@pytest.mark.parametrize(
    "hows", [("gzip -1", "gzip -9"), ("tar", "tar")], ids=["gzipped", "uncompressed"]
)
def test_a_primed_layer_is_not_compressed_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, hows: tuple[str, str]
) -> None:
    """Primed by its tar's digest (the config's diff_id), a layer is taken from the memo
    however the engine sent it: gzipped, as the pipeline asks it to, or uncompressed."""
    source = exported(tmp_path, hows)
    unprimed = normalise(source, tmp_path / "a.tar", epoch=GOLDEN_EPOCH, ref_name="g:1")
    memo: dict[str, tuple[bytes, str]] = {}
    for tar in golden_tars():
        prime(memo, tar)
    assert sorted(memo) == sorted(GOLDEN_DIFF_IDS)
    if hows == ("tar", "tar"):
        index = json.loads(member(source, "index.json"))
        assert sorted(memo) == sorted(layer_digests(source, index["manifests"][0]["digest"]))

    def fail(data: bytes) -> tuple[bytes, str]:
        raise AssertionError("compressed a layer that was primed")

    monkeypatch.setattr(canonical, "layer", fail)
    primed = normalise(source, tmp_path / "b.tar", epoch=GOLDEN_EPOCH, ref_name="g:1", memo=memo)
    assert primed == unprimed
    assert (tmp_path / "a.tar").read_bytes() == (tmp_path / "b.tar").read_bytes()
