"""pipeline.image.layout: a layout tarball read in place (each blob when asked for, from the
file that was indexed), canonical JSON, and the fixed-order tarball."""

from __future__ import annotations

import hashlib
import os
import tarfile
from pathlib import Path

import pytest

from pipeline.image.layout import Layout, dump, write_tar
from pipeline.image.oci import OCIError
from tests.layouts import exported, member, noise


def _digests(path: Path) -> dict[str, bytes]:
    """Every blob of the layout tarball at `path`, read whole with tarfile."""
    with tarfile.open(path) as tar:
        names = [m.name for m in tar.getmembers() if m.name.startswith("blobs/sha256/")]
    return {"sha256:" + n.rsplit("/", 1)[1]: member(path, n) for n in names}


def test_every_blob_reads_as_its_bytes_and_hashes_to_its_name(tmp_path: Path) -> None:
    path = exported(tmp_path)
    whole = _digests(path)
    with Layout.read(path) as layout:
        assert layout.index["manifests"][0]["digest"] in layout.blobs
        assert set(layout.blobs) == set(whole)
        assert len(layout.blobs) == len(whole)
        for digest, data in whole.items():
            got = layout.blobs[digest]
            assert got == data, digest
            assert "sha256:" + hashlib.sha256(got).hexdigest() == digest
        with pytest.raises(KeyError):
            layout.blobs["sha256:" + "0" * 64]
        assert layout.blobs.get("sha256:" + "0" * 64) is None


def test_a_file_put_in_its_place_is_not_read(tmp_path: Path) -> None:
    """An image kept by --watch is replaced by a rename while another run reads it: the run
    reads the file it indexed, not the new one at offsets that mean nothing there."""
    path = exported(tmp_path)
    whole = _digests(path)
    with Layout.read(path) as layout:
        other = tmp_path / "other.tar"
        write_tar(other, {"index.json": b"{}", "junk": noise(300_000)}, 0)
        other.replace(path)
        assert {d: layout.blobs[d] for d in whole} == whole


def test_a_file_cut_short_meanwhile_says_so(tmp_path: Path) -> None:
    path = exported(tmp_path)
    with Layout.read(path) as layout:
        biggest = max(layout.blobs, key=lambda d: len(layout.blobs[d]))
        os.truncate(path, 1024)
        with pytest.raises(OCIError, match=f"blob {biggest} is cut short"):
            layout.blobs[biggest]


def test_blobs_set_are_held_beside_those_of_the_file(tmp_path: Path) -> None:
    path = exported(tmp_path)
    with Layout.read(path) as layout:
        first = len(layout.blobs)
        layout.blobs["sha256:new"] = b"new"
        assert layout.blobs["sha256:new"] == b"new"
        assert len(layout.blobs) == first + 1
        some = next(d for d in layout.blobs if d != "sha256:new")
        layout.blobs[some] = b"replaced"
        assert layout.blobs[some] == b"replaced"
        assert len(layout.blobs) == first + 1
        del layout.blobs[some]
        assert some not in layout.blobs
        with pytest.raises(KeyError):
            del layout.blobs[some]


def test_a_tarball_without_an_index_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "no-index.tar"
    write_tar(path, {"blobs/sha256/" + "a" * 64: b"x"}, 0)
    with pytest.raises(OCIError, match=r"no index\.json"), Layout.read(path):
        pass


def test_json_is_canonical_and_the_tarball_fixed(tmp_path: Path) -> None:
    assert dump({"b": 1, "a": ["é", 2]}) == '{"b":1,"a":["é",2]}'.encode()
    one, two = tmp_path / "one.tar", tmp_path / "two.tar"
    write_tar(one, {"b": b"2", "a": b"1"}, 1700000000)
    write_tar(two, {"a": b"1", "b": b"2"}, 1700000000)
    assert one.read_bytes() == two.read_bytes()
    with tarfile.open(one) as tar:
        assert [m.name for m in tar.getmembers()] == ["blobs", "blobs/sha256", "a", "b"]
        assert {m.mtime for m in tar.getmembers()} == {1700000000}


def test_a_blob_read_in_parts_is_whole_and_asking_for_it_reads_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One read returns at most 2 GiB on Linux: the blob is read until it is whole. Whether
    a blob is there is answered from the index alone."""
    path = exported(tmp_path)
    whole = _digests(path)
    real = os.pread

    def in_parts(fd: int, size: int, offset: int) -> bytes:
        return real(fd, min(size, 1000), offset)

    with Layout.read(path) as layout:
        monkeypatch.setattr(os, "pread", in_parts)
        assert {d: layout.blobs[d] for d in whole} == whole

        def no_read(fd: int, size: int, offset: int) -> bytes:
            raise AssertionError("read a blob to say whether it is there")

        monkeypatch.setattr(os, "pread", no_read)
        assert all(d in layout.blobs for d in whole)
        assert "sha256:" + "0" * 64 not in layout.blobs


def test_a_tarball_cut_short_is_not_an_image(tmp_path: Path) -> None:
    path = exported(tmp_path)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2 + 100])
    with pytest.raises(OCIError, match="not an image tarball"), Layout.read(path):
        pass
