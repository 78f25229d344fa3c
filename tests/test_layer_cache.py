"""pipeline.image.layer_cache: a layer compressed by one run is not compressed again by the next,
the image is the same byte for byte; a file cut short is compressed again, never used; only
the newest files are kept."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from pipeline.image import canonical, layer_cache
from pipeline.image.layer_cache import Kept
from pipeline.image.normalise import normalise
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
