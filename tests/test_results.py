"""pipeline.results: sizes in docker's units, and the JSON document's keys, each described.
(These tests moved here from tests/test_report.py, now tests/test_summary.py, with the types
and human_size.)"""

from __future__ import annotations

from dataclasses import replace

import pytest

from pipeline import results
from pipeline.image.anatomy import Anatomy
from pipeline.results import GoCache, ImageReport, RunReport, Step, human_size


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


def test_the_module_describes_every_key_the_json_has() -> None:
    """pipeline.results' docstring is the JSON's documentation: every key is in it."""
    anatomy = Anatomy(1, 2, 3, False, False, True, 4, "sha256:ab (COPY)", 5)
    image = replace(REPORT.images[0], anatomy=anatomy)
    data = replace(REPORT, images=(image,), go_cache=GoCache("none")).to_json()

    def keys(value: object) -> set[str]:
        if isinstance(value, dict):
            return set(value) | {k for v in value.values() for k in keys(v)}
        if isinstance(value, list):
            return {k for v in value for k in keys(v)}
        return set()

    described = results.__doc__ or ""
    missing = sorted(k for k in keys(data) if f'"{k}"' not in described)
    assert missing == [], missing


def test_a_kept_cache_is_not_said_to_be_saved() -> None:
    saved_to = "127.0.0.1:5000/c:main-linux-amd64-go-0123@sha256:" + "cd" * 32
    kept = GoCache("engine", saved_to=saved_to, saved_size=12_300_000, kept=True).summary()
    assert kept == (
        f"go cache: started from the engine's own; kept the 12.3MB at {saved_to} (the build"
        " came from the engine's cache: nothing new to save)"
    )
    pushed = GoCache("engine", saved_to=saved_to, saved_size=12_300_000).summary()
    assert pushed == f"go cache: started from the engine's own; saved 12.3MB to {saved_to}"
