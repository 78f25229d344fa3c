"""What a run made, as data: RunReport and its parts, and their JSON (pipeline.cli.summary shows
them on the terminal). Imports nothing that draws: a module that only needs a Step imports
this one.

The JSON document (`--json PATH`) has this shape (schema_version 1):

    {"schema_version": 1, "variant": "multistage", "go_image": "...", "runtime_image": "...",
     "platforms": ["linux/amd64"], "printed": "Hello World\\n" | null,
     "images": [{"ref": "helloworld:multistage", "role": "image" | "builder",
                 "digest": "sha256:...", "media_type": "...", "platforms": [...],
                 "output": "build/helloworld-multistage.tar" | null,
                 "published": "REF@sha256:..." | null, "published_bytes": N | null,
                 "tags": ["TAG", ...] (every tag at the published digest; [] unpublished),
                 "loaded": "sha256:..." | null,
                 "size": {"uncompressed": N, "compressed": N}, "layers": N,
                 "anatomy": {"base_layers": N, "base_bytes": N, "own_bytes": N,
                             "toolchain": bool, "source": bool, "shell": bool,
                             "binary_bytes": N | null, "biggest_layer": "sha256:... (...)",
                             "biggest_layer_bytes": N} | null,
                 "sbom": "build/helloworld-multistage.spdx.json" | null,
                 "sbom_tag": "REPO:sha256-<hex>" | null,
                 "provenance": "build/helloworld-multistage.intoto.json" | null,
                 "signatures": [{"digest": "sha256:...", "manifest": "sha256:..."}, ...],
                 "attestations": "sha256:..." | null,
                 "bundles": ["sha256:...", ...]}],
     "steps": [{"name": "build", "seconds": 1.23}, ...],
     "cache": "cold" | "warm" | "unknown",
     "notes": ["what the run did not do, and why", ...],
     "bases": {"golang:1.26": "docker.io/library/golang:1.26@sha256:...", ...},
     "go_cache": {"started_from": "none" | "engine" | "registry",
                  "restored_from": "REG/REPO:TAG" | null, "restored_size": N | null,
                  "saved_to": "REG/REPO:TAG@sha256:..." | null, "saved_size": N | null,
                  "warnings": ["...", ...],
                  "kept": bool (saved_to was the tag's already: the build was warm)} | null}

A run of several images (a config file's [images.NAME] tables) writes one document for them:

    {"schema_version": 1, "runs": [<the document above, for each image that built>, ...],
     "failed": [{"image": "worker:multistage", "error": "..."}, ...]}
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from pipeline.image.anatomy import Anatomy

SCHEMA_VERSION = 1


@dataclass(frozen=True)
class Step:
    name: str
    seconds: float
    size: int | None = None  # bytes moved (the tarball exported, the blobs a push sent), if known


@dataclass(frozen=True)
class ImageReport:
    """One image the run made."""

    ref: str
    role: str  # "image": the variant's result; "builder": the builder pattern's build image
    digest: str
    media_type: str
    platforms: tuple[str, ...]
    uncompressed: int
    compressed: int
    layers: int
    output: str | None = None
    published: str | None = None
    sent: int | None = None  # bytes of the image's blobs the publish sent (a base's: mounted)
    tags: tuple[str, ...] = ()  # every tag of the published repository at its digest
    loaded: str | None = None
    anatomy: Anatomy | None = None
    sbom: str | None = None  # the SPDX file beside the tarball
    # The registry tag the SBOM referrer is listed under; None without an SBOM or where the
    # registry's referrers API lists it.
    sbom_tag: str | None = None
    provenance: str | None = None  # the SLSA provenance statement's file (--provenance)
    # --sign-key: each signed digest (the image's, then each platform's) → its signature
    # manifest (under the tag sha256-<hex>.sig); the attestations' manifest (….att)
    signatures: tuple[tuple[str, str], ...] = ()
    attestations: str | None = None
    bundles: tuple[str, ...] = ()  # the Sigstore bundles' referrer manifests (bundle, both)


@dataclass(frozen=True)
class GoCache:
    """What the Go caches of a run with --cache-from/--cache-to did."""

    started_from: str  # "none" (empty), "engine" (the engine's own volumes) or "registry"
    restored_from: str | None = None  # registry/repository:tag, when started from the registry
    restored_size: int | None = None  # bytes pulled
    saved_to: str | None = None  # registry/repository:tag@digest, after --cache-to
    saved_size: int | None = None  # bytes of the artifact's layers
    warnings: tuple[str, ...] = ()  # each a cache that could not be used, and why
    kept: bool = False  # saved_to was there before: the build came from the engine's cache

    def summary(self) -> str:
        """`go cache: started from 127.0.0.1:5000/c:main-… (12.1MB); saved 12.3MB to …`"""
        if self.restored_from is not None:
            text = f"started from {self.restored_from} ({human_size(self.restored_size or 0)})"
        else:
            text = {"none": "started empty", "engine": "started from the engine's own"}.get(
                self.started_from, self.started_from
            )
        if self.saved_to is not None and self.kept:
            text += (
                f"; kept the {human_size(self.saved_size or 0)} at {self.saved_to} (the build"
                " came from the engine's cache: nothing new to save)"
            )
        elif self.saved_to is not None:
            text += f"; saved {human_size(self.saved_size or 0)} to {self.saved_to}"
        return f"go cache: {text}"


@dataclass(frozen=True)
class RunReport:
    variant: str
    go_image: str
    runtime_image: str
    platforms: tuple[str, ...]
    images: tuple[ImageReport, ...]
    printed: str | None
    steps: tuple[Step, ...] = field(default=())
    cache: str = "unknown"  # "cold": go build ran now; "warm": it came from the cache
    notes: tuple[str, ...] = ()  # what the run did not do, and why
    bases: dict[str, str] = field(default_factory=dict)  # requested → pinned (name@digest)
    go_cache: GoCache | None = None  # with --cache-from/--cache-to only

    @property
    def warnings(self) -> tuple[str, ...]:
        return self.go_cache.warnings if self.go_cache is not None else ()

    def seconds(self, step: str) -> float:
        return sum(s.seconds for s in self.steps if s.name == step)

    def title(self) -> str:
        """`multistage: golang:1.26 → busybox:1.35 (linux/amd64)`"""
        platforms = ", ".join(self.platforms)
        if self.variant == "naive":
            return f"{self.variant}: {self.go_image} ({platforms})"
        return f"{self.variant}: {self.go_image} → {self.runtime_image} ({platforms})"

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"schema_version": SCHEMA_VERSION}
        for key, value in asdict(self).items():
            data[key] = value
        data["images"] = [
            {
                "ref": i.ref,
                "role": i.role,
                "digest": i.digest,
                "media_type": i.media_type,
                "platforms": list(i.platforms),
                "output": i.output,
                "published": i.published,
                "published_bytes": i.sent,
                "tags": list(i.tags),
                "loaded": i.loaded,
                "size": {"uncompressed": i.uncompressed, "compressed": i.compressed},
                "layers": i.layers,
                "anatomy": asdict(i.anatomy) if i.anatomy else None,
                "sbom": i.sbom,
                "sbom_tag": i.sbom_tag,
                "provenance": i.provenance,
                "signatures": [{"digest": d, "manifest": m} for d, m in i.signatures],
                "attestations": i.attestations,
                "bundles": list(i.bundles),
            }
            for i in self.images
        ]
        data["platforms"] = list(self.platforms)
        data["steps"] = [{"name": s.name, "seconds": round(s.seconds, 3)} for s in self.steps]
        return data


def human_size(size: int) -> str:
    """Bytes in the units `docker image ls` uses (powers of 1000): 9.14MB, 841MB."""
    value = float(size)
    for unit in ("B", "kB", "MB", "GB"):
        if value < 1000 or unit == "GB":
            return f"{value:.0f}{unit}" if unit == "B" else f"{value:.3g}{unit}"
        value /= 1000
    raise AssertionError("unreachable")
