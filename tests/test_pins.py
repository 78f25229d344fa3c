"""pipeline.recipe.pins: the lock file round-trips; a tag that moved fails with both digests
named."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.errors import PipelineError, UsageError
from pipeline.recipe.pins import check, read_lock, write_lock

OLD = "docker.io/library/golang:1.26@sha256:" + "a" * 64
NEW = "docker.io/library/golang:1.26@sha256:" + "b" * 64


def test_round_trip(tmp_path: Path) -> None:
    lock = tmp_path / "bases.lock"
    assert read_lock(lock) == {}
    write_lock(lock, {"golang:1.26": OLD})
    write_lock(lock, {"busybox:1.35": "docker.io/library/busybox:1.35@sha256:" + "c" * 64})
    assert read_lock(lock) == {
        "golang:1.26": OLD,
        "busybox:1.35": "docker.io/library/busybox:1.35@sha256:" + "c" * 64,
    }


def test_locked_digest_is_used_while_the_tag_stays(tmp_path: Path) -> None:
    assert check("golang:1.26", OLD, {"golang:1.26": OLD}, tmp_path / "l") == OLD
    assert check("golang:1.26", NEW, {}, tmp_path / "l") == NEW


def test_a_tag_that_moved_fails(tmp_path: Path) -> None:
    with pytest.raises(
        PipelineError, match=r"golang:1.26 now points to sha256:b+, but .* pins sha256:a+"
    ):
        check("golang:1.26", NEW, {"golang:1.26": OLD}, tmp_path / "bases.lock")


def test_not_a_lock_file(tmp_path: Path) -> None:
    lock = tmp_path / "bases.lock"
    lock.write_text("[1, 2]")
    with pytest.raises(UsageError, match="not a lock file"):
        read_lock(lock)
