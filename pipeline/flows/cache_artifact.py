"""The Go caches as an OCI artifact (ARTIFACT) in a registry: one gzipped tarball per cache,
made canonically (sorted names, no times, no owners: the same cache pushes the same blob),
compressed on every core, and pulled and pushed within --push-timeout with the run's login
for that registry."""

from __future__ import annotations

import collections
import concurrent.futures
import contextlib
import functools
import gzip
import os
import shutil
import tarfile
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import anyio
import deflate

from pipeline.errors import PipelineError
from pipeline.recipe.cache_steps import BUILD_TAR, MOD_TAR
from pipeline.refs import ImageRef
from pipeline.registry.access import Deadline, Login
from pipeline.registry.threads import bounded
from pipeline.settings import Settings

T = TypeVar("T")
ARTIFACT = "application/vnd.pipeline.go-cache.v1"
BUILD_LAYER = "application/vnd.pipeline.go-build-cache.v1.tar+gzip"
MOD_LAYER = "application/vnd.pipeline.go-mod-cache.v1.tar+gzip"
TARS = {BUILD_LAYER: BUILD_TAR, MOD_LAYER: MOD_TAR}  # as the engine reads and writes them
CHUNK = 32 << 20  # bytes of tar per gzip member: the compressor's memory stays bounded


def inflate(path: Path) -> Path:
    """The gzipped tarball `path` (one or more members) as a tarball beside it, its name
    without .gz; `path` is removed."""
    tar = path.with_suffix("")
    with gzip.open(path, "rb") as packed, tar.open("wb") as out:
        shutil.copyfileobj(packed, out, CHUNK)
    path.unlink()
    return tar


def deflate_tar(tar: Path) -> Path:
    """The tarball `tar` gzipped beside it (name.gz), a member per CHUNK, each compressed by
    libdeflate at level 1: the bytes depend on the tarball's alone; `tar` is removed. The
    members are compressed on every core at once (libdeflate lets go of the GIL), a few
    CHUNKs in memory at a time, and written in order."""
    packed = tar.with_name(tar.name + ".gz")
    workers = os.cpu_count() or 1
    with (
        tar.open("rb") as source,
        packed.open("wb") as out,
        concurrent.futures.ThreadPoolExecutor(workers) as pool,
    ):
        pending: collections.deque[concurrent.futures.Future[bytearray]] = collections.deque()
        while chunk := source.read(CHUNK):
            pending.append(pool.submit(deflate.gzip_compress, chunk, 1))
            if len(pending) > workers:
                out.write(pending.popleft().result())
        while pending:
            out.write(pending.popleft().result())
    tar.unlink()
    return packed


async def _through_registry(
    settings: Settings, ref: ImageRef, call: Callable[[Login, Deadline], T]
) -> T:
    """`call(login, deadline)` (a pull or push of `ref`'s registry) in a thread of its own,
    with the run's login for that registry, stopped after --push-timeout."""
    deadline = Deadline.of(settings.push_timeout)
    work = functools.partial(call, Login.of(settings, ref), deadline)
    return await bounded(work, deadline, settings.push_timeout, ref.registry)


async def pull(settings: Settings, ref: ImageRef, tag: str, directory: Path) -> list[Path]:
    """The artifact's gzipped cache tarballs on the host, named as the restore script expects
    them once inflated (go-build.tar.gz, ...)."""
    from pipeline.registry import remote

    def download(login: Login, deadline: Deadline) -> list[tuple[Path, str]]:
        return remote.pull_artifact(ref, tag, login, deadline, directory, artifact_type=ARTIFACT)

    layers = await _through_registry(settings, ref, download)
    files = []
    for path, media_type in layers:
        if media_type in TARS:
            files.append(path.rename(path.with_name(TARS[media_type] + ".gz")))
    if not any(path.name == TARS[BUILD_LAYER] + ".gz" for path in files):
        raise PipelineError(f"{ref.qualified}:{tag} holds no Go build cache")
    return files


async def standing(settings: Settings, ref: ImageRef, tag: str) -> tuple[str, int] | None:
    """The digest and layers' bytes of the cache tagged `tag` under `ref`, None if there is
    none (nothing is downloaded)."""
    from pipeline.registry import remote

    def look(login: Login, deadline: Deadline) -> tuple[str, int] | None:
        try:
            return remote.artifact_at(ref, tag, login, deadline, artifact_type=ARTIFACT)
        except remote.NotFound:
            return None

    return await _through_registry(settings, ref, look)


def merge(directory: Path, name: str) -> Path:
    """The tarballs `directory`/<name>.*.tar (the save script's batches) as one tarball
    `directory`/<name>: regular files only, sorted by name, without times or owners, so that
    its bytes depend on the entries alone. The batches are removed."""
    parts = sorted(directory.glob(f"{Path(name).stem}.*.tar"))
    target = directory / name
    with contextlib.ExitStack() as stack:
        members: dict[str, tuple[tarfile.TarFile, tarfile.TarInfo]] = {}
        for part in parts:
            archive = stack.enter_context(tarfile.open(part))
            for info in archive:
                if info.isfile():
                    members[info.name.removeprefix("./")] = (archive, info)
        with tarfile.open(target, "w", format=tarfile.GNU_FORMAT) as out:
            for entry in sorted(members):
                archive, info = members[entry]
                clean = tarfile.TarInfo(entry)
                clean.size, clean.mode = info.size, info.mode & 0o7777
                out.addfile(clean, archive.extractfile(info))
    for part in parts:
        part.unlink()
    return target


async def push(
    settings: Settings, ref: ImageRef, tag: str, directory: Path, *, modules: bool
) -> tuple[str, int]:
    from pipeline.registry import remote

    layers = (BUILD_LAYER, MOD_LAYER) if modules else (BUILD_LAYER,)
    files = [
        (await anyio.to_thread.run_sync(deflate_tar, directory / TARS[layer]), layer)
        for layer in layers
    ]
    annotations = {"org.opencontainers.image.description": f"Go caches for {settings.go_image}"}

    def upload(login: Login, deadline: Deadline) -> tuple[str, int]:
        return remote.push_artifact(
            files, ref, tag, login, deadline, artifact_type=ARTIFACT, annotations=annotations
        )

    return await _through_registry(settings, ref, upload)
