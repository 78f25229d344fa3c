"""What proves an image: its SLSA v1 provenance (what the user chose, what the tool, the engine
and Go were, the commit and the bases by digest, and when), and, with --sign-key, the pushed
image signed (each platform's manifest too, as `cosign sign --recursive`) with the provenance
and the SBOM attached as signed attestations, in the tags cosign, Kyverno and policy-controller
read (pipeline.registry.signatures). The image's digest never depends on any of it: the times
live only in the attestation."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import pipeline
from pipeline.errors import RegistryError
from pipeline.image import signing
from pipeline.image.oci import MANIFEST, ImageInfo, digest_of, read_blob
from pipeline.image.signing import Attestation, Signed
from pipeline.provenance import rfc3339
from pipeline.refs import parse_image_ref
from pipeline.registry.access import Deadline, Login
from pipeline.registry.threads import bounded
from pipeline.settings import Settings

SLSA = "https://slsa.dev/provenance/v1"
SPDX = "https://spdx.dev/Document"
# What our build is and which parameters it takes: docs/build-type.md describes it.
BUILD_TYPE = "tag:pipeline,2026:build-type/go-image/v1"
LOCAL_BUILDER = "tag:pipeline,2026:builder/local"


@dataclass(frozen=True)
class Facts:
    """What the provenance says beyond the settings: the bases as pinned (requested →
    registry/repository:tag@digest), the Go and engine versions, and when the run began
    and ended (seconds since 1970)."""

    pinned: Mapping[str, str]
    go_version: str
    engine_version: str
    started: float
    finished: float


def _dependency(name: str, pinned: str) -> dict[str, Any]:
    """A base image as SLSA names it: a package URL and its digest."""
    ref = parse_image_ref(pinned, option=name)
    where = "" if ref.docker_hub else f"?repository_url={ref.registry}"
    tag = f"@{ref.tag}" if ref.tag else ""
    return {
        "uri": f"pkg:docker/{ref.repository}{tag}{where}",
        "digest": {"sha256": ref.digest.removeprefix("sha256:")},
        "name": name,
    }


def _github(env: Mapping[str, str]) -> tuple[dict[str, str], str, str | None]:
    """Under GitHub Actions: the workflow's facts, its builder id and the run's invocation."""
    if env.get("GITHUB_ACTIONS") != "true":
        return {}, LOCAL_BUILDER, None
    server = env.get("GITHUB_SERVER_URL", "https://github.com")
    facts = {
        "event_name": env.get("GITHUB_EVENT_NAME", ""),
        "repository_id": env.get("GITHUB_REPOSITORY_ID", ""),
        "runner_environment": env.get("RUNNER_ENVIRONMENT", ""),
    }
    builder = f"{server}/{env['GITHUB_WORKFLOW_REF']}" if env.get("GITHUB_WORKFLOW_REF") else ""
    run = env.get("GITHUB_RUN_ID")
    invocation = None
    if run:
        repository = env.get("GITHUB_REPOSITORY", "")
        attempt = env.get("GITHUB_RUN_ATTEMPT", "1")
        invocation = f"{server}/{repository}/actions/runs/{run}/attempts/{attempt}"
    return {k: v for k, v in facts.items() if v}, builder or LOCAL_BUILDER, invocation


def _external(settings: Settings, original: Settings) -> dict[str, Any]:
    """What the user chose that shapes the image."""
    git = settings.provenance
    build, image = settings.go_build, settings.image
    found: dict[str, Any] = {
        "source": {
            "uri": git.source_url if git else None,
            "ref": git.ref if git else None,
            "commit": git.revision if git else None,
        },
        "package": settings.package,
        "variant": str(settings.variant),
        "name": settings.name,
        "platforms": [str(p) for p in settings.platforms],
        "goImage": original.go_image,
        "runtimeImage": original.runtime_image,
        "user": settings.user,
        "build": {
            "trimpath": build.trimpath,
            "strip": build.strip,
            "ldflags": build.ldflags,
            "tags": list(build.tags),
            "flags": list(build.flags),
            "env": dict(build.env),
        },
        "image": {
            "cmd": list(image.cmd),
            "env": dict(image.env),
            "ports": list(image.ports),
            "workdir": image.workdir,
            "labels": dict(image.labels),
            "annotations": dict(image.annotations),
            "files": image.files is not None,
        },
    }
    found["source"] = {k: v for k, v in found["source"].items() if v}
    return found


def statement(
    settings: Settings,
    original: Settings,
    info: ImageInfo,
    sbom: bytes | None,
    facts: Facts,
    env: Mapping[str, str] = os.environ,
) -> bytes:
    """The image's SLSA v1 provenance, as an in-toto statement about its digest (named as
    pushed, else by its local tag)."""
    git = settings.provenance
    github, builder, invocation = _github(env)
    internal: dict[str, Any] = {
        "tool": {"name": "pipeline", "version": pipeline.__version__},
        "daggerIo": metadata.version("dagger-io"),
        "engine": facts.engine_version,
        "goVersion": facts.go_version,
        "sourceDateEpoch": git.epoch if git else None,
    }
    if github:
        internal["github"] = github
    dependencies = []
    if git and git.revision and git.source_url:
        uri = f"git+{git.source_url}" + (f"@{git.ref}" if git.ref else "")
        dependencies.append({"uri": uri, "digest": {"gitCommit": git.revision}})
    for role, image in (("go image", original.go_image), ("runtime image", original.runtime_image)):
        if image in facts.pinned:
            dependencies.append(_dependency(role, facts.pinned[image]))
    metadata_: dict[str, Any] = {
        "startedOn": rfc3339(int(facts.started)),
        "finishedOn": rfc3339(int(facts.finished)),
    }
    if invocation:
        metadata_ = {"invocationId": invocation, **metadata_}
    run: dict[str, Any] = {"builder": {"id": builder}, "metadata": metadata_}
    if sbom is not None:
        digest = {"sha256": digest_of(sbom).removeprefix("sha256:")}
        run["byproducts"] = [
            {"name": "sbom.spdx.json", "mediaType": "application/spdx+json", "digest": digest}
        ]
    predicate = {
        "buildDefinition": {
            "buildType": BUILD_TYPE,
            "externalParameters": _external(settings, original),
            "internalParameters": internal,
            "resolvedDependencies": dependencies,
        },
        "runDetails": run,
    }
    return signing.statement({_subject_name(settings): info.digest}, SLSA, predicate)


def _subject_name(settings: Settings) -> str:
    ref = settings.publish
    return ref.qualified if ref is not None else settings.tag


def attestations(
    provenance: bytes, sbom: bytes | None, info: ImageInfo, name: str
) -> list[Attestation]:
    """The provenance and the SBOM, as the statements to sign and attach."""
    found = [Attestation(SLSA, provenance)]
    if sbom is not None:
        found.append(
            Attestation(SPDX, signing.statement({name: info.digest}, SPDX, json.loads(sbom)))
        )
    return found


def subjects(info: ImageInfo, tarball: Path) -> list[dict[str, Any]]:
    """The descriptors of what is signed: the pushed image, then each platform's manifest
    (its bytes in the tarball's layout), as `cosign sign --recursive` signs them."""
    found = [{"mediaType": info.media_type, "digest": info.digest, "size": info.size}]
    for manifest in info.manifests:
        if manifest.digest != info.digest:
            blob = read_blob(tarball, manifest.digest)
            kind = json.loads(blob).get("mediaType", MANIFEST)
            found.append({"mediaType": kind, "digest": manifest.digest, "size": len(blob)})
    return found


async def sign(
    settings: Settings, info: ImageInfo, tarball: Path, provenance: bytes, sbom: bytes | None
) -> Signed:
    """Sign the pushed image and each of its platforms' manifests, and attach the provenance
    and the SBOM as signed attestations, within --push-timeout. A refusal says the image was
    pushed but not signed."""
    from pipeline.registry import signatures  # requests and oras: only a push needs them

    ref, key = settings.publish, settings.sign_key
    assert ref is not None
    assert key is not None
    login, deadline = Login.of(settings), Deadline.of(settings.push_timeout)
    signed = subjects(info, tarball)
    attached = attestations(provenance, sbom, info, ref.qualified)
    created = settings.provenance.created if settings.provenance else None

    def work() -> Signed:
        return signatures.sign(
            ref, login, deadline, key, subjects=signed, attestations=attached,
            form=settings.signature_format, created=created,
        )  # fmt: skip

    try:
        return await bounded(work, deadline, settings.push_timeout, ref.registry)
    except RegistryError as err:
        raise RegistryError(
            f"{ref.qualified}@{info.digest} was pushed but not signed: {err}"
        ) from None
