"""What a run made, on the terminal (a rich summary) and in a file (`--json PATH`; the
document's shape is described in pipeline.results)."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path

from rich.console import Console
from rich.table import Table

from pipeline.outputs import write_text
from pipeline.results import SCHEMA_VERSION, RunReport, human_size

WIDE = 400  # columns for a summary with no terminal to fit: wide enough to cut nothing


def stdout_console() -> Console:
    """Where the summary goes: a terminal's own width; in a pipe or a CI log, COLUMNS if it is
    set, else WIDE, so that no image name, size or path is cut (rich would take 80)."""
    console = Console(highlight=False)
    if not console.is_terminal and not os.environ.get("COLUMNS"):
        console = Console(highlight=False, width=WIDE)
    return console


def render(report: RunReport, console: Console) -> None:
    """The summary: images with digests, sizes and outputs; what the run printed; step times."""
    table = Table(title=report.title(), title_justify="left")
    for column in ("image", "digest", "uncompressed", "compressed", "layers", "where"):
        table.add_column(
            column,
            justify="right" if column in {"uncompressed", "compressed", "layers"} else "left",
        )
    for image in report.images:
        also = f"also tagged {', '.join(image.tags[1:])}" if image.tags[1:] else None
        where = [w for w in (image.output, image.published, also, image.loaded and "docker") if w]
        table.add_row(
            image.ref + ("" if image.role == "image" else f" ({image.role})"),
            image.digest.removeprefix("sha256:")[:12],
            human_size(image.uncompressed),
            human_size(image.compressed),
            str(image.layers),
            "\n".join(where) or "-",
        )
    console.print(table)
    for requested, pinned in report.bases.items():
        console.print(f"base {requested}: {pinned.partition('@')[2]}", markup=False)
    for note in report.notes:
        console.print(f"note: {note}", markup=False)
    if report.go_cache is not None:
        console.print(report.go_cache.summary(), markup=False)
    if report.printed is not None:
        console.print(f"run printed: {report.printed.rstrip()!r}")
    console.print(
        "steps: " + ", ".join(f"{s.name} {s.seconds:.2f}s" for s in report.steps),
        highlight=False,
    )


def write_json(report: RunReport, path: Path) -> None:
    write_text(path, json.dumps(report.to_json(), indent=2) + "\n")


def write_images_json(
    made: Sequence[RunReport], failed: Sequence[tuple[str, str]], path: Path
) -> None:
    """Several images' results (a config file's [images.NAME]): each built image's document
    as `--json` writes one, and each failure."""
    document = {
        "schema_version": SCHEMA_VERSION,
        "runs": [report.to_json() for report in made],
        "failed": [{"image": image, "error": error} for image, error in failed],
    }
    write_text(path, json.dumps(document, indent=2) + "\n")
