"""The comparison as a picture (matplotlib): each image's size on a log scale, the base's
part and ours stacked, and the floor (the binary alone) drawn as a line."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, no display

import matplotlib.pyplot as plt
from matplotlib.ticker import FuncFormatter

from pipeline.cli.checks import check_chart_path
from pipeline.cli.compare import Comparison
from pipeline.outputs import atomic_path
from pipeline.results import human_size

BASE_COLOR, OWN_COLOR, FLOOR_COLOR = "#9aa5b1", "#2f80ed", "#d64545"


def draw(comparison: Comparison, path: Path) -> None:
    """Write the chart to `path` (.svg or .png), atomically."""
    image_format = check_chart_path(path)
    rows = list(reversed(comparison.rows))  # first row on top
    labels = [f"{r.ref}\non {r.base}" for r in rows]
    base = [max(r.base_bytes, 1) for r in rows]
    own = [max(r.own_bytes, 1) for r in rows]
    figure, axes = plt.subplots(figsize=(10, 1.1 + 0.75 * len(rows)), dpi=120)
    axes.barh(labels, base, color=BASE_COLOR, label="base image")
    axes.barh(labels, own, left=base, color=OWN_COLOR, label="added by the pipeline")
    axes.set_xscale("log")
    axes.xaxis.set_major_formatter(FuncFormatter(lambda value, _: human_size(int(value))))
    for y, row in enumerate(rows):
        axes.annotate(
            f" {human_size(row.uncompressed)}",
            (row.base_bytes + row.own_bytes, y),
            va="center",
            fontsize=9,
        )
    if comparison.floor_bytes:
        axes.axvline(
            comparison.floor_bytes,
            color=FLOOR_COLOR,
            linestyle="--",
            label=f"floor: the binary alone ({human_size(comparison.floor_bytes)})",
        )
    axes.set_xlabel("uncompressed size, bytes (log scale)")
    axes.set_title(comparison.conclusion, fontsize=11)
    axes.set_xlim(
        left=min(comparison.floor_bytes or min(own), min(own)) / 3,
        right=max(b + o for b, o in zip(base, own, strict=True)) * 4,
    )
    axes.legend(loc="lower right", fontsize=8)
    axes.grid(axis="x", which="major", alpha=0.3)
    figure.tight_layout()
    with atomic_path(path) as tmp:
        figure.savefig(tmp, format=image_format)
    plt.close(figure)
