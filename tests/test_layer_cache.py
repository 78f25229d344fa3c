"""pipeline.image.layer_cache: a layer compressed by one run is not compressed again by the next,
the image is the same byte for byte; a file cut short is compressed again, never used; only
the newest files are kept. A big layer read by one run (its sizes and files) is not read
again by the next, and the image read back is the same."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from pipeline.image import canonical, layer_cache, oci
from pipeline.image.layer_cache import Kept, Scanned
from pipeline.image.normalise import normalise
from pipeline.image.oci import Layer, read_image
from tests.layouts import GOLDEN_DIGEST, GOLDEN_EPOCH, exported

KEY = "sha256:" + "a" * 64
DIFF_ID = "sha256:" + "b" * 64


def test_the_directory_names_the_compressor_and_its_level(tmp_path: Path) -> None:
    assert layer_cache.directory(tmp_path) == tmp_path / "layers-0.9.0-6"


def test_a_layer_kept_by_one_run_is_found_by_the_next(tmp_path: Path) -> None:
    Kept(tmp_path)[KEY] = (b"gzip bytes", DIFF_ID)
    later = Kept(tmp_path)
    assert KEY in later
    assert later[KEY] == (b"gzip bytes", DIFF_ID)
    assert "sha256:" + "c" * 64 not in later
    assert [p.name.endswith(".tmp") for p in tmp_path.iterdir()] == [False]


def test_a_file_cut_short_is_not_used_and_goes(tmp_path: Path) -> None:
    Kept(tmp_path)[KEY] = (b"gzip bytes", DIFF_ID)
    (path,) = tmp_path.iterdir()
    path.write_bytes(b"gzip by")
    later = Kept(tmp_path)
    assert KEY not in later
    with pytest.raises(KeyError):
        later[KEY]
    assert list(tmp_path.iterdir()) == []


def test_only_the_newest_are_kept(tmp_path: Path) -> None:
    kept = Kept(tmp_path)
    for n in range(layer_cache.KEEP + 3):
        kept[f"sha256:{n:064x}"] = (f"layer {n}".encode(), DIFF_ID)
        # Each older than the next, whatever the file system's time resolution.
        (newest,) = tmp_path.glob(f"{n:064x}.*")
        os.utime(newest, (n, n))
    names = sorted(p.name.split(".")[0] for p in tmp_path.iterdir())
    assert len(names) == layer_cache.KEEP
    assert names[0] == f"{3:064x}", "the oldest went first"


def test_the_next_run_compresses_nothing_and_writes_the_same_image(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = exported(tmp_path, ("tar", "tar"))  # as our export asks the engine for it
    cache = tmp_path / "cache"
    first = normalise(source, tmp_path / "a.tar", epoch=GOLDEN_EPOCH, ref_name="g:1",
                      memo=Kept(cache))  # fmt: skip
    assert first == GOLDEN_DIGEST
    assert len(list(cache.iterdir())) == 2  # both layers

    def fail(data: bytes) -> tuple[bytes, str]:
        raise AssertionError("compressed a layer kept by the run before")

    monkeypatch.setattr(canonical, "layer", fail)
    again = normalise(source, tmp_path / "b.tar", epoch=GOLDEN_EPOCH, ref_name="g:1",
                      memo=Kept(cache))  # fmt: skip
    assert again == GOLDEN_DIGEST
    assert (tmp_path / "a.tar").read_bytes() == (tmp_path / "b.tar").read_bytes()


# --- what read_image learns of a layer ---------------------------------------------------

BIG = Layer(KEY, "application/vnd.oci.image.layer.v1.tar+gzip", 1000,
            layer_cache.SCANNED_FROM, {"usr/local/go/bin/go": 7, "usr/local/go": 0})  # fmt: skip


def test_the_memos_live_under_the_cache(tmp_path: Path) -> None:
    kept, scanned = layer_cache.memos(tmp_path)
    assert kept.where == layer_cache.directory(tmp_path)
    assert scanned.where == tmp_path / f"scans-{layer_cache.SCANS}"


def test_a_big_layer_read_by_one_run_is_known_to_the_next(tmp_path: Path) -> None:
    Scanned(tmp_path)[KEY] = BIG
    later = Scanned(tmp_path)
    assert KEY in later
    assert later[KEY] == BIG
    assert later[KEY].files == BIG.files
    assert "sha256:" + "c" * 64 not in later
    assert [p.name.endswith(".json") for p in tmp_path.iterdir()] == [True]


def test_a_small_layer_is_read_again_rather_than_kept(tmp_path: Path) -> None:
    small = Layer(KEY, BIG.media_type, 10, layer_cache.SCANNED_FROM - 1, {"app": 9})
    scanned = Scanned(tmp_path)
    scanned[KEY] = small
    assert scanned[KEY] == small  # for the session
    assert not tmp_path.exists() or list(tmp_path.iterdir()) == []
    assert KEY not in Scanned(tmp_path)


@pytest.mark.parametrize("damage", [b'{"media_type": "x"', b"[]"])
def test_a_scan_cut_short_or_changed_is_not_used_and_goes(tmp_path: Path, damage: bytes) -> None:
    Scanned(tmp_path)[KEY] = BIG
    (path,) = tmp_path.iterdir()
    path.write_bytes(damage)
    later = Scanned(tmp_path)
    assert KEY not in later
    with pytest.raises(KeyError):
        later[KEY]
    assert list(tmp_path.iterdir()) == []


def test_the_next_run_reads_no_layer_and_learns_the_same(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every layer kept (the threshold lowered to 0); the second read_image, with a new memo
    on the same directory, inflates nothing and says the same, files included."""
    image = exported(tmp_path)
    monkeypatch.setattr(layer_cache, "SCANNED_FROM", 0)
    first = read_image(image, Scanned(tmp_path / "scans"))
    assert len(list((tmp_path / "scans").iterdir())) == len(first.manifests[0].layers)

    def fail(*args: object) -> None:
        raise AssertionError("read a layer the run before had read")

    monkeypatch.setattr(oci, "_scan_layer", fail)
    again = read_image(image, Scanned(tmp_path / "scans"))
    assert again == first
    assert [la.files for la in again.manifests[0].layers] == [
        la.files for la in first.manifests[0].layers
    ]


def test_a_layer_known_by_its_digest_takes_the_media_type_and_size_this_image_gives(
    tmp_path: Path,
) -> None:
    """The same bytes can be named by another manifest's media type (Docker's, say)."""
    image = exported(tmp_path)
    first = read_image(image)
    layer = first.manifests[0].layers[0]
    memo = Scanned(tmp_path / "scans")
    memo[layer.digest] = Layer(layer.digest, "application/vnd.docker.image.rootfs.diff.tar.gzip",
                               1, layer.uncompressed, layer.files)  # fmt: skip
    again = read_image(image, memo)
    assert again.manifests[0].layers[0] == layer
