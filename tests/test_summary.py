"""pipeline.cli.summary: the JSON file and a summary that shows what it holds."""

from __future__ import annotations

import json
from pathlib import Path

from rich.console import Console

from pipeline.cli.summary import render, write_json
from pipeline.results import SCHEMA_VERSION
from tests.test_results import REPORT


def test_json_schema(tmp_path: Path) -> None:
    write_json(REPORT, tmp_path / "r.json")
    data = json.loads((tmp_path / "r.json").read_text())
    assert data["schema_version"] == SCHEMA_VERSION
    assert data["images"][0]["size"] == {"uncompressed": 3_720_000, "compressed": 1_790_000}
    assert data["steps"] == [{"name": "build", "seconds": 1.5}, {"name": "export", "seconds": 0.25}]
    assert data["printed"] == "Hello World\n"


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
