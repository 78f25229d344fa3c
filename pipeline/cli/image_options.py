"""The build commands' flags for what goes into the binary and the image beyond the defaults:
ldflags (templates, pipeline.cli.templates), build tags, further `go build` flags and
environment, the stamped version, the image's further tags, CMD, environment, ports, working
directory, labels, annotations and files. Each flag's declaration, as pipeline.cli.options'
are (BuildFlags holds them)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from pipeline.settings import DATA_DIR, DATA_ENV

LdflagsOpt = Annotated[
    str | None,
    typer.Option(
        "--ldflags",
        help="Linker flags after -s -w, a template: {{.Version}} {{.Commit}} {{.ShortCommit}} "
        "{{.Tag}} {{.Date}} {{.Epoch}} {{.Name}} {{.Env.NAME}} (e.g. "
        "'-X main.version={{.Version}}').",
        envvar="PIPELINE_LDFLAGS",
        show_default=False,
    ),
]
BuildTagsOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--build-tag",
        help="Go build tag, repeatable or comma-separated (go build -tags), for vet and test too.",
        envvar="PIPELINE_BUILD_TAG",
        show_default=False,
    ),
]
GoFlagsOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--go-flag",
        help="A further `go build` flag, repeatable (e.g. -gcflags=all=-l).",
        envvar="PIPELINE_GO_FLAG",
        show_default=False,
    ),
]
BuildEnvOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--build-env",
        help="KEY=VALUE for the go command, repeatable (e.g. GOAMD64=v3, GOEXPERIMENT=...).",
        envvar="PIPELINE_BUILD_ENV",
        show_default=False,
    ),
]
StripOpt = Annotated[
    bool,
    typer.Option(
        "--strip/--no-strip",
        help="Link with -s -w: no symbol table, no DWARF (builder and multistage).",
        envvar="PIPELINE_STRIP",
    ),
]
TrimpathOpt = Annotated[
    bool,
    typer.Option(
        "--trimpath/--no-trimpath",
        help="Build with -trimpath: no path of the build machine in the binary.",
        envvar="PIPELINE_TRIMPATH",
    ),
]
AppVersionOpt = Annotated[
    str | None,
    typer.Option(
        "--app-version",
        help="The program's version: {{.Version}}, the version label and the SBOM's "
        "(by default `git describe --tags --always`).",
        envvar="PIPELINE_APP_VERSION",
        show_default=False,
    ),
]
TagOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--tag",
        help="A further tag of the --publish repository, repeatable: pushed once, every tag "
        "at the same digest.",
        envvar="PIPELINE_TAG",
        show_default=False,
    ),
]
CmdOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--cmd",
        help="The image's CMD (the entrypoint's default arguments), one per --cmd.",
        envvar="PIPELINE_CMD",
        show_default=False,
    ),
]
EnvOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--env",
        help="KEY=VALUE in the image's environment, repeatable.",
        envvar="PIPELINE_ENV",
        show_default=False,
    ),
]
PortOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--port",
        help="A port the image exposes, repeatable: 8080 (tcp) or 53/udp.",
        envvar="PIPELINE_PORT",
        show_default=False,
    ),
]
WorkdirOpt = Annotated[
    str | None,
    typer.Option(
        "--workdir",
        help="The image's working directory (by default the binary's, /myapp).",
        envvar="PIPELINE_WORKDIR",
        show_default=False,
    ),
]
LabelOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--label",
        help="KEY=VALUE, a label of the image's config, repeatable.",
        envvar="PIPELINE_LABEL",
        show_default=False,
    ),
]
AnnotationOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--annotation",
        help="KEY=VALUE, an annotation of the image's manifest, repeatable.",
        envvar="PIPELINE_ANNOTATION",
        show_default=False,
    ),
]
FilesOpt = Annotated[
    Path | None,
    typer.Option(
        "--files",
        help=f"A directory shipped beside the binary, at {DATA_DIR} (${DATA_ENV} says where).",
        envvar="PIPELINE_FILES",
        show_default=False,
    ),
]
