"""The options one command has and the others do not: --watch and --verbose (the build
commands'), compare's (--runtime-image repeated, --markdown, --chart, --max-size) and
verify's (--variant). Each flag's declaration, as pipeline.cli.options' are."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from pipeline.settings import DEFAULT_RUNTIME_IMAGE, SCRATCH

WatchOpt = Annotated[
    bool,
    typer.Option(
        "--watch",
        help="Keep the session open and build again whenever a Go source "
        "file changes (Ctrl-C stops).",
        envvar="PIPELINE_WATCH",
    ),
]
VerboseOpt = Annotated[
    bool,
    typer.Option("--verbose", help="Show tracebacks (for bug reports).", envvar="PIPELINE_VERBOSE"),
]
RuntimeImagesOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--runtime-image",
        help="Runtime base, repeatable: the first for builder and multistage, each further one "
        f"adds a multistage image on it (e.g. {SCRATCH}) [default: {DEFAULT_RUNTIME_IMAGE}].",
        envvar="PIPELINE_RUNTIME_IMAGE",
        show_default=False,
    ),
]
MarkdownOpt = Annotated[
    Path | None,
    typer.Option(
        "--markdown",
        help="Write the table as Markdown to this path.",
        envvar="PIPELINE_MARKDOWN",
        show_default=False,
    ),
]
ChartOpt = Annotated[
    Path | None,
    typer.Option(
        "--chart",
        help="Draw the sizes to this .svg or .png.",
        envvar="PIPELINE_CHART",
        show_default=False,
    ),
]
MaxSizeOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--max-size",
        help="Budget IMAGE=SIZE, repeatable (e.g. multistage=10MB); also "
        "read from [tool.pipeline.budgets] in pyproject.toml.",
        envvar="PIPELINE_MAX_SIZE",
        show_default=False,
    ),
]


class Reproducible(StrEnum):
    """The variants whose images are made reproducible (naive stays naive)."""

    BUILDER = "builder"
    MULTISTAGE = "multistage"


VariantOpt = Annotated[
    Reproducible,
    typer.Option("--variant", help="Which variant to build twice.", envvar="PIPELINE_VARIANT"),
]
ConfigOpt = Annotated[
    Path | None,
    typer.Option(
        "--config",
        help="The build flags' file (by default pipeline.toml at --source, if there is one).",
        envvar="PIPELINE_CONFIG",
        show_default=False,
    ),
]
ImageOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--image",
        help="Build this image of the config file's [images.NAME] tables, repeatable "
        "(by default every one).",
        envvar="PIPELINE_IMAGE",
        show_default=False,
    ),
]
