"""bench/shared/programs.py: the edits the scenarios make to a program's source (a one-line edit
that compiles, undone byte for byte, also when the build fails) and the floor, the program as a
static binary."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from bench.shared.programs import PROGRAMS, edited, floor
from tests.bench_fixtures import fixture_hello as fixture_hello  # the `hello` fixture


def test_one_line_edit_compiles_and_is_undone_byte_for_byte(hello: Path) -> None:
    source = hello / PROGRAMS["helloworld"].source_file
    before = source.read_bytes()
    with edited(source, "n1"):
        assert source.read_bytes() != before
        assert source.read_text().splitlines()[-1] == 'var _ = "bench edit n1"'
        vet = subprocess.run(
            ["go", "vet", "."], cwd=hello, capture_output=True, text=True, check=False
        )
        assert vet.returncode == 0, vet.stderr
    assert source.read_bytes() == before


def test_edit_is_undone_when_the_build_fails(hello: Path) -> None:
    source = hello / PROGRAMS["helloworld"].test_file
    before = source.read_bytes()
    with pytest.raises(RuntimeError), edited(source, "n2"):
        raise RuntimeError("the build failed")
    assert source.read_bytes() == before


def test_floor_is_the_static_binary(hello: Path, tmp_path: Path) -> None:
    out = tmp_path / "floor"
    size = floor(PROGRAMS["helloworld"], hello, out)
    assert size == out.stat().st_size
    assert 1_000_000 < size < 3_000_000, f"got {size} bytes for hello world, want about 1.6 MB"
    assert out.read_bytes()[:4] == b"\x7fELF"
