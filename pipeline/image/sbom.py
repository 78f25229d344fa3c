"""An SPDX 2.3 SBOM of the image, from the binary's own build info (what `go version -m -json`
prints, read from the binary by pipeline.image.buildinfo): the image, its base, the main module,
every dependency with its version and checksum, and the Go standard library. Written with
spdx-tools and validated by it; the same inputs give the same bytes."""

from __future__ import annotations

import base64
import io
import re
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from spdx_tools.spdx.model.actor import Actor, ActorType
from spdx_tools.spdx.model.checksum import Checksum, ChecksumAlgorithm
from spdx_tools.spdx.model.document import CreationInfo, Document
from spdx_tools.spdx.model.package import (
    ExternalPackageRef,
    ExternalPackageRefCategory,
    Package,
    PackagePurpose,
)
from spdx_tools.spdx.model.relationship import Relationship, RelationshipType
from spdx_tools.spdx.model.spdx_no_assertion import SpdxNoAssertion
from spdx_tools.spdx.validation.document_validator import validate_full_spdx_document
from spdx_tools.spdx.writer.json.json_writer import write_document_to_stream

from pipeline.errors import PipelineError

MEDIA_TYPE = "application/spdx+json"
TOOL = "pipeline-0.1.0"
_NAMESPACE = uuid.UUID("6f1d5d2e-9c1b-4f0e-8d53-2f0a4c6f9b11")  # this tool's, for uuid5


@dataclass(frozen=True)
class Subject:
    """The image the SBOM describes."""

    name: str  # helloworld:multistage
    digest: str  # of the reproducible image
    base: str | None  # name@digest, None for scratch
    epoch: int
    version: str | None = None  # the program's stamped version (--app-version, git describe)


def _spdx_id(text: str) -> str:
    return "SPDXRef-" + re.sub(r"[^A-Za-z0-9.-]", "-", text)


def _purl(path: str, version: str) -> str:
    return f"pkg:golang/{path}@{version}"


def _module(path: str, version: str, checksum: str | None) -> Package:
    """A Go module as an SPDX package; its go.sum hash (h1:, base64 SHA-256) as a checksum."""
    checksums = []
    if checksum and checksum.startswith("h1:"):
        digest = base64.b64decode(checksum.removeprefix("h1:")).hex()
        checksums.append(Checksum(ChecksumAlgorithm.SHA256, digest))
    return Package(
        spdx_id=_spdx_id(f"go-module-{path}-{version}"),
        name=path,
        version=version,
        download_location=SpdxNoAssertion(),
        files_analyzed=False,
        checksums=checksums,
        external_references=[
            ExternalPackageRef(
                ExternalPackageRefCategory.PACKAGE_MANAGER, "purl", _purl(path, version)
            )
        ],
        primary_package_purpose=PackagePurpose.LIBRARY,
    )


def build_sbom(buildinfo: dict[str, Any], subject: Subject) -> bytes:
    """The SBOM as SPDX 2.3 JSON bytes. Raises PipelineError if spdx-tools finds it invalid."""
    created = datetime.fromtimestamp(subject.epoch, UTC)
    image = Package(
        spdx_id="SPDXRef-image",
        name=subject.name,
        version=subject.digest,
        download_location=SpdxNoAssertion(),
        files_analyzed=False,
        checksums=[Checksum(ChecksumAlgorithm.SHA256, subject.digest.removeprefix("sha256:"))],
        primary_package_purpose=PackagePurpose.CONTAINER,
        built_date=created,
    )
    main = buildinfo.get("Main") or {"Path": buildinfo.get("Path", "main"), "Version": "(devel)"}
    # A main module built from a checkout is "(devel)" to Go: the stamped version says more.
    built_as = main.get("Version") or "(devel)"
    version = subject.version if built_as == "(devel)" and subject.version else built_as
    program = _module(main["Path"], version, main.get("Sum"))
    program.primary_package_purpose = PackagePurpose.APPLICATION
    program.spdx_id = "SPDXRef-main-module"
    go_version = str(buildinfo.get("GoVersion", "go")).removeprefix("go")
    stdlib = _module("stdlib", f"v{go_version}", None)
    stdlib.spdx_id = "SPDXRef-go-stdlib"
    deps = [
        _module(d["Path"], d["Version"], d.get("Sum"))
        for d in sorted(buildinfo.get("Deps") or [], key=lambda d: (d["Path"], d["Version"]))
    ]
    packages = [image, program, stdlib, *deps]
    relationships = [
        Relationship("SPDXRef-DOCUMENT", RelationshipType.DESCRIBES, "SPDXRef-image"),
        Relationship("SPDXRef-image", RelationshipType.CONTAINS, program.spdx_id),
        Relationship(program.spdx_id, RelationshipType.DEPENDS_ON, stdlib.spdx_id),
        *(Relationship(program.spdx_id, RelationshipType.DEPENDS_ON, d.spdx_id) for d in deps),
    ]
    if subject.base:
        base_name, _, base_digest = subject.base.partition("@")
        base = Package(
            spdx_id="SPDXRef-base-image",
            name=base_name,
            version=base_digest,
            download_location=SpdxNoAssertion(),
            files_analyzed=False,
            checksums=[Checksum(ChecksumAlgorithm.SHA256, base_digest.removeprefix("sha256:"))],
            primary_package_purpose=PackagePurpose.CONTAINER,
        )
        packages.insert(1, base)
        relationships.append(
            Relationship("SPDXRef-image", RelationshipType.DESCENDANT_OF, "SPDXRef-base-image")
        )
    document = Document(
        creation_info=CreationInfo(
            spdx_version="SPDX-2.3",
            spdx_id="SPDXRef-DOCUMENT",
            name=f"{subject.name} {subject.digest}",
            # A URI that names this document and no other: derived from the image digest.
            document_namespace=f"urn:uuid:{uuid.uuid5(_NAMESPACE, subject.digest)}",
            creators=[Actor(ActorType.TOOL, TOOL)],
            created=created,
        ),
        packages=packages,
        relationships=relationships,
    )
    problems = validate_full_spdx_document(document)
    if problems:
        raise PipelineError(f"the SBOM is not valid SPDX: {problems[0].validation_message}")
    stream = io.StringIO()
    write_document_to_stream(document, stream, validate=False)
    return (stream.getvalue() + "\n").encode()
