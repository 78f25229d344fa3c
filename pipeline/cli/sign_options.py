"""The build commands' flags for proving what was built: the key that signs what --publish
pushes (its password from PIPELINE_SIGN_PASSWORD only, read once and taken out of the
environment, like the registry password) and the file the SLSA provenance is written to. Each
flag's declaration, as pipeline.cli.options' are (BuildFlags holds them)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from pipeline.image.signing import SIGN_PASSWORD_ENV, SignatureFormat

SignKeyOpt = Annotated[
    Path | None,
    typer.Option(
        "--sign-key",
        help="Sign what --publish pushes with this cosign key file (or EC P-256 PEM), and "
        f"attach its SLSA provenance and SBOM as signed attestations; the key's password "
        f"comes from ${SIGN_PASSWORD_ENV} only.",
        envvar="PIPELINE_SIGN_KEY",
        show_default=False,
    ),
]
SignatureFormatOpt = Annotated[
    SignatureFormat,
    typer.Option(
        "--signature-format",
        help="legacy: cosign's sha256-<hex>.sig/.att tags, which every verifier reads; bundle: "
        "Sigstore bundles as OCI referrers (cosign v3's); both.",
        envvar="PIPELINE_SIGNATURE_FORMAT",
    ),
]
ProvenanceOpt = Annotated[
    Path | None,
    typer.Option(
        "--provenance",
        help="Write the image's SLSA provenance (an in-toto statement, unsigned) to this path.",
        envvar="PIPELINE_PROVENANCE",
        show_default=False,
    ),
]
