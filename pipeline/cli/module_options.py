"""The build commands' flags for private modules: where the go command finds them (GOPRIVATE,
GOPROXY, GONOSUMDB) and what the `go mod download` step alone sees (a .netrc, tokens named by
their variable, the module hosts' CA). Each flag's declaration, as pipeline.cli.options' are
(BuildFlags holds them). The .netrc's content may come from PIPELINE_NETRC instead, read once
and taken out of the environment, like the registry password."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from pipeline.errors import NETRC_ENV

GoprivateOpt = Annotated[
    str | None,
    typer.Option(
        "--goprivate",
        help="GOPRIVATE: the module paths fetched directly and not checked against the "
        "checksum database (e.g. github.com/acme).",
        envvar="PIPELINE_GOPRIVATE",
        show_default=False,
    ),
]
GoproxyOpt = Annotated[
    str | None,
    typer.Option(
        "--goproxy",
        help="GOPROXY: the module proxies the go command asks (e.g. https://athens.acme.dev,direct).",
        envvar="PIPELINE_GOPROXY",
        show_default=False,
    ),
]
GonosumdbOpt = Annotated[
    str | None,
    typer.Option(
        "--gonosumdb",
        help="GONOSUMDB: module paths not checked against the checksum database "
        "(by default GOPRIVATE's).",
        envvar="PIPELINE_GONOSUMDB",
        show_default=False,
    ),
]
NetrcOpt = Annotated[
    Path | None,
    typer.Option(
        "--netrc",
        help=f"A .netrc with the module hosts' credentials, seen by `go mod download` only "
        f"(or its content in ${NETRC_ENV}).",
        show_default=False,
    ),
]
ModuleTokenOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--module-token",
        help="[LOGIN@]HOST=VARIABLE, repeatable: the token in $VARIABLE for HOST's modules "
        "(login oauth2 by default; e.g. github.com=GITHUB_TOKEN).",
        envvar="PIPELINE_MODULE_TOKEN",
        show_default=False,
    ),
]
ModuleCaOpt = Annotated[
    Path | None,
    typer.Option(
        "--module-ca",
        help="CA certificate (PEM) of the module proxy and the GOPRIVATE hosts.",
        envvar="PIPELINE_MODULE_CA",
        show_default=False,
    ),
]
