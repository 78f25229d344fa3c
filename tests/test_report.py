"""pipeline.report: sizes in docker's units, the JSON schema, and a summary that shows it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from rich.console import Console

from pipeline.report import (
    SCHEMA_VERSION,
    GoCache,
    ImageReport,
    RunReport,
    Step,
    human_size,
    render,
    write_json,
)


@pytest.mark.parametrize(
    ("size", "want"),
    [
        (0, "0B"),
        (999, "999B"),
        (9_140_000, "9.14MB"),
        (841_000_000, "841MB"),
        (1_585_314, "1.59MB"),
        (2_500_000_000, "2.5GB"),
    ],
)
def test_human_size(size: int, want: str) -> None:
    assert human_size(size) == want


REPORT = RunReport(
    variant="multistage",
    go_image="golang:1.26",
    runtime_image="busybox:1.35",
    platforms=("linux/amd64",),
    images=(
        ImageReport(
            ref="helloworld:multistage",
            role="image",
            digest="sha256:" + "ab" * 32,
            media_type="application/vnd.oci.image.manifest.v1+json",
            platforms=("linux/amd64",),
            uncompressed=3_720_000,
            compressed=1_790_000,
            layers=2,
            output="build/helloworld-multistage.tar",
        ),
    ),
    printed="Hello World\n",
    steps=(Step("build", 1.5), Step("export", 0.25)),
)


def test_json_schema(tmp_path: Path) -> None:
    write_json(REPORT, tmp_path / "r.json")
    data = json.loads((tmp_path / "r.json").read_text())
    assert data["schema_version"] == SCHEMA_VERSION
    assert data["images"][0]["size"] == {"uncompressed": 3_720_000, "compressed": 1_790_000}
    assert data["steps"] == [{"name": "build", "seconds": 1.5}, {"name": "export", "seconds": 0.25}]
    assert data["printed"] == "Hello World\n"


def test_the_module_describes_every_key_the_json_has() -> None:
    """pipeline.report's docstring is the JSON's documentation: every key is in it."""
    from dataclasses import replace

    from pipeline import report
    from pipeline.anatomy import Anatomy

    anatomy = Anatomy(1, 2, 3, False, False, True, 4, "sha256:ab (COPY)", 5)
    image = replace(REPORT.images[0], anatomy=anatomy)
    data = replace(REPORT, images=(image,), go_cache=GoCache("none")).to_json()

    def keys(value: object) -> set[str]:
        if isinstance(value, dict):
            return set(value) | {k for v in value.values() for k in keys(v)}
        if isinstance(value, list):
            return {k for v in value for k in keys(v)}
        return set()

    described = report.__doc__ or ""
    missing = sorted(k for k in keys(data) if f'"{k}"' not in described)
    assert missing == [], missing


def test_render_shows_what_the_json_holds() -> None:
    console = Console(record=True, width=200)
    render(REPORT, console)
    text = console.export_text()
    for needle in (
        "helloworld:multistage",
        "abababababab",
        "3.72MB",
        "1.79MB",
        "build/helloworld-multistage.tar",
        "'Hello World'",
        "build 1.50s",
    ):
        assert needle in text, needle
