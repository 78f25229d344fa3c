"""Delivering what a variant's build made, as the settings say: each image as an OCI tarball
(pipeline.flows.tarball), loaded into Docker, its SBOM written, published with the SBOM as
its referrer (pipeline.flows.publish), the lock file written, the image run; and what each
step measured, as the run's report."""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from pathlib import Path

from dagger import dag

from pipeline.clock import Clock
from pipeline.engine.session import Session
from pipeline.flows import publish, sign, tarball
from pipeline.flows.reuse import Kept
from pipeline.image import buildinfo
from pipeline.image.anatomy import dissect
from pipeline.image.oci import BaseLayers, ImageInfo, same_platform
from pipeline.outputs import write_bytes
from pipeline.recipe import pins
from pipeline.recipe.variants import Built, Image
from pipeline.refs import Platform
from pipeline.results import ImageReport, RunReport
from pipeline.settings import WORKDIR, Settings


@dataclass
class Job:
    """One variant's build in a session, once its bases are pinned: `settings` build from
    the digests `pinned` gave for the images `original` named."""

    settings: Settings
    original: Settings
    pinned: dict[str, str]
    session: Session
    platforms: tuple[Platform, ...]
    temp: Path
    clock: Clock
    kept: Kept | None = None  # --watch's: the images kept for the next build

    @property
    def runnable(self) -> int | None:
        """The index of the engine's own platform, the image that can run and load."""
        native = self.session.native
        return self.platforms.index(native) if native in self.platforms else None


@dataclass(frozen=True)
class Made:
    """What the build made: the recipe's images; whether `go build` ran in this session
    ("cold") or came from the cache ("warm"); the binary's bytes; the tar of the image's
    binary layer where it can be foreseen, and the image to make the variant's image from
    with it (pipeline.flows.reuse)."""

    built: Built
    cache: str
    binary: bytes
    layer: bytes | None = None
    previous: Path | None = None


def _base_layers(job: Job, image: Image, role: str) -> dict[str, BaseLayers]:
    """The layers of the image's base by platform, as tarball.fetch_bases read them: the
    variant's image has the job's platforms, another image the engine's platform."""
    if image.base is None:
        return {}
    platforms = job.platforms if role == "image" else (job.session.native,)
    return {str(p): job.session.bases[image.base_ref, str(p)] for p in platforms}


async def _images(
    job: Job, made: Made, *, dissect_images: bool
) -> tuple[list[ImageReport], list[tuple[ImageInfo, Path]]]:
    """Export (and load) every image the variant made: their reports, their infos and
    tarballs."""
    settings, session, runnable, built = job.settings, job.session, job.runnable, made.built
    reports: list[ImageReport] = []
    infos: list[tuple[ImageInfo, Path]] = []
    for role, image in (("image", built.image), *(("builder", e) for e in built.extras)):
        destination = settings.output if role == "image" else settings.builder_output
        bases = _base_layers(job, image, role)
        # The variant's own image is made reproducible; the builder pattern's build image,
        # like the naive one, is what it is.
        epoch = settings.provenance.epoch if settings.provenance and role == "image" else None
        swap = None
        if role == "image" and made.previous is not None and made.layer is not None:
            swap = (made.previous, made.layer)
        with job.clock.step("export" if role == "image" else f"export {role}") as running:
            info, exported = await tarball.export(
                image,
                destination,
                job.temp,
                [str(p) for p in job.platforms],
                session,
                epoch,
                base_layers=bases,
                swap=swap,
            )
            running.size = info.compressed
        if job.kept and role == "image" and made.layer is not None and len(job.platforms) == 1:
            await job.kept.keep(settings, exported)
        infos.append((info, exported))
        output = str(destination) if destination else None
        report = tarball.image_report(role, image, info, output)
        if dissect_images:
            shown = info.manifests[runnable or 0]
            base = next(
                (b for b in bases.values() if same_platform(b.platform, shown.platform)), None
            )
            anatomy = dissect(shown, base.diff_ids if base else (), f"{WORKDIR}/{settings.name}")
            report = replace(report, anatomy=anatomy)
        if settings.load and runnable is not None:
            with job.clock.step("load" if role == "image" else f"load {role}"):
                index = runnable if len(image.containers) > 1 else 0
                loaded = await tarball.load(image, index, exported, job.temp)
            report = replace(report, loaded=loaded)
        reports.append(report)
    return reports, infos


async def _prove(
    job: Job,
    made: Made,
    info: ImageInfo,
    exported: Path,
    document: bytes | None,
    report: ImageReport,
) -> ImageReport:
    """The image's SLSA provenance, written to --provenance; with --sign-key, the pushed image
    signed and the provenance and SBOM attached as signed attestations."""
    settings = job.settings
    try:
        go_version = str(buildinfo.read(made.binary).get("GoVersion", ""))
    except buildinfo.BuildInfoError:
        go_version = ""  # the SBOM step says why
    facts = sign.Facts(
        pinned=job.pinned,
        go_version=go_version,
        engine_version=await dag.version(),
        started=job.clock.began,
        finished=time.time(),
    )
    statement = sign.statement(settings, job.original, info, document, facts)
    if settings.provenance_file is not None:
        write_bytes(settings.provenance_file, statement)
        report = replace(report, provenance=str(settings.provenance_file))
    if settings.sign_key is not None:
        with job.clock.step("sign"):
            signed = await sign.sign(settings, info, exported, statement, document)
        pairs = tuple(signed.signatures.items())
        report = replace(
            report, signatures=pairs, attestations=signed.attestations, bundles=signed.bundles
        )
    return report


def _skipped(settings: Settings, runnable: int | None, native: Platform) -> tuple[str, ...]:
    """A note for --load and --run when no image can run on the engine's platform."""
    if runnable is not None or not (settings.load or settings.run):
        return ()
    skipped = " and ".join(
        w for w, on in (("--load", settings.load), ("--run", settings.run)) if on
    )
    return (f"{skipped} skipped: no {native} image (the engine's own) among --platform",)


async def variant(job: Job, made: Made, *, dissect_images: bool) -> RunReport:
    """Export, load, publish and run what the build made, as the settings say."""
    settings, session, original = job.settings, job.session, job.original
    reports, infos = await _images(job, made, dissect_images=dissect_images)
    info, exported = infos[0]
    document = None
    if settings.provenance is not None and (
        settings.output is not None or settings.publish is not None  # somewhere to put it
    ):
        with job.clock.step("sbom"):
            document = publish.sbom_document(made.binary, settings, info, original.tag)
    if document is not None and settings.output is not None:
        sbom_path = settings.output.with_name(settings.output.name + ".spdx.json")
        write_bytes(sbom_path, document)
        reports[0] = replace(reports[0], sbom=str(sbom_path))

    if settings.publish is not None:
        with job.clock.step("publish") as running:
            published, referrer, sent = await publish.publish(
                made.built.image,
                settings,
                exported,
                info,
                document,
                _base_layers(job, made.built.image, "image"),
            )
            running.size = sent
        tags = (settings.publish.push_tag, *settings.tags)
        reports[0] = replace(
            reports[0], published=published, sbom_tag=referrer, sent=sent, tags=tags
        )
    if settings.provenance_file is not None or settings.sign_key is not None:
        reports[0] = await _prove(job, made, info, exported, document, reports[0])
    if settings.lock is not None:
        pins.write_lock(settings.lock, {**job.pinned, **session.pins})

    printed = None
    if settings.run and job.runnable is not None:
        with job.clock.step("run"):
            container = made.built.image.containers[job.runnable]
            printed = await container.with_exec([], use_entrypoint=True).stdout()

    return RunReport(
        variant=str(settings.variant),
        go_image=original.go_image,
        runtime_image=original.runtime_image,
        bases=job.pinned,
        platforms=tuple(str(p) for p in job.platforms),
        images=tuple(reports),
        printed=printed,
        steps=tuple(job.clock.steps),
        cache=made.cache,
        notes=_skipped(settings, job.runnable, session.native),
    )
