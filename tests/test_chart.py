"""pipeline.cli.chart: the comparison drawn to .png and .svg, written whole."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.cli.chart import draw
from pipeline.cli.compare import Comparison, Row
from pipeline.errors import UsageError


def row(key: str, base: int, own: int) -> Row:
    return Row(
        key=key,
        ref=f"helloworld:{key}",
        role="image",
        digest="sha256:" + "0" * 64,
        base="busybox:1.35",
        uncompressed=base + own,
        compressed=(base + own) // 2,
        layers=2,
        base_bytes=base,
        own_bytes=own,
        toolchain=False,
        source=False,
        shell=base > 0,
        binary_bytes=own,
        biggest_layer="x",
        biggest_layer_bytes=own,
        times_smaller_than_naive=1.0,
        times_floor=1.0,
        build_seconds=0.1,
        cache="warm",
        printed="Hello World\n",
    )


COMPARISON = Comparison(
    rows=(
        row("naive", 660_000_000, 36_000_000),
        row("multistage", 2_130_000, 1_590_000),
        row("multistage-scratch", 0, 1_590_000),
    ),
    floor_bytes=1_585_314,
    conclusion="multistage on busybox:1.35 is 188x smaller than naive",
)


def test_png(tmp_path: Path) -> None:
    path = tmp_path / "sizes.png"
    draw(COMPARISON, path)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert path.stat().st_size > 10_000
    assert [p.name for p in tmp_path.iterdir()] == ["sizes.png"]


def test_svg_names_every_image_and_the_floor(tmp_path: Path) -> None:
    path = tmp_path / "sizes.svg"
    draw(COMPARISON, path)
    svg = path.read_text()
    for needle in ("helloworld:naive", "helloworld:multistage-scratch", "floor", "1.59MB"):
        assert needle in svg, needle


def test_other_formats_are_refused(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match=r"\.svg or \.png"):
        draw(COMPARISON, tmp_path / "sizes.pdf")
    assert list(tmp_path.iterdir()) == []
