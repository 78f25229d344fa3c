"""pipeline.outputs: a result file appears whole, with a normal mode, or not at all; a file
kept between runs is used only while it hashes to its name, and only the newest are kept."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from pipeline.errors import OutputError
from pipeline.outputs import (
    atomic_path,
    cache_home,
    check_destination,
    keep_newest,
    kept_bytes,
    write_text,
)


def test_atomic_path_renames_on_success(tmp_path: Path) -> None:
    target = tmp_path / "sub" / "out.txt"
    with atomic_path(target) as tmp:
        assert tmp.parent == target.parent
        assert not target.exists()
        tmp.write_text("done")
    assert target.read_text() == "done"
    assert [p.name for p in target.parent.iterdir()] == ["out.txt"]
    umask = os.umask(0)
    os.umask(umask)
    assert target.stat().st_mode & 0o777 == 0o666 & ~umask


def test_atomic_path_keeps_the_old_file_on_failure(tmp_path: Path) -> None:
    target = tmp_path / "out.txt"
    target.write_text("previous")

    def interrupted_write() -> None:
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("interrupted")

    with pytest.raises(RuntimeError):
        interrupted_write()
    assert target.read_text() == "previous"
    assert [p.name for p in tmp_path.iterdir()] == ["out.txt"]


def test_write_text(tmp_path: Path) -> None:
    write_text(tmp_path / "a.json", "{}\n")
    assert (tmp_path / "a.json").read_text() == "{}\n"


def test_check_destination(tmp_path: Path) -> None:
    check_destination(tmp_path / "new" / "image.tar", option="--output")
    assert (tmp_path / "new").is_dir()
    with pytest.raises(OutputError, match="is a directory"):
        check_destination(tmp_path, option="--output")
    (tmp_path / "file").write_text("")
    with pytest.raises(OutputError, match="--json"):
        check_destination(tmp_path / "file" / "x.json", option="--json")


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes anywhere")
def test_check_destination_unwritable(tmp_path: Path) -> None:
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    with pytest.raises(OutputError, match="permission denied"):
        check_destination(locked / "image.tar", option="--output")


# (moved here from tests/test_schema.py with cache_home, once schema.cache_dir)
@pytest.mark.parametrize(
    ("env", "want"),
    [
        ({"XDG_CACHE_HOME": "/var/cache/me"}, Path("/var/cache/me/pipeline")),
        ({"XDG_CACHE_HOME": "relative/ignored"}, Path.home() / ".cache" / "pipeline"),
        ({"XDG_CACHE_HOME": ""}, Path.home() / ".cache" / "pipeline"),
        ({}, Path.home() / ".cache" / "pipeline"),
    ],
)
def test_the_cache_directory(env: dict[str, str], want: Path) -> None:
    got = cache_home(env)
    assert got == want, f"got {got}, want {want}"


def test_a_kept_file_is_read_while_it_hashes_to_its_name_and_becomes_the_newest(
    tmp_path: Path,
) -> None:
    path = tmp_path / "kept"
    path.write_bytes(b"blob")
    os.utime(path, (1, 1))
    assert kept_bytes(path, hashlib.sha256(b"blob").hexdigest()) == b"blob"
    assert path.stat().st_mtime > 1


def test_a_kept_file_changed_or_gone_is_not_read_and_goes(tmp_path: Path) -> None:
    path = tmp_path / "kept"
    path.write_bytes(b"blo")  # cut short
    assert kept_bytes(path, hashlib.sha256(b"blob").hexdigest()) is None
    assert not path.exists()
    assert kept_bytes(path, hashlib.sha256(b"blob").hexdigest()) is None


def test_only_the_newest_files_are_kept(tmp_path: Path) -> None:
    for n in range(5):
        (tmp_path / f"{n}.json").write_text(str(n))
        os.utime(tmp_path / f"{n}.json", (n, n))
    (tmp_path / "other.gz").write_text("not of this kind")
    keep_newest(tmp_path.glob("*.json"), 2)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["3.json", "4.json", "other.gz"]
