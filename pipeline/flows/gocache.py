"""The Go caches through a registry: --cache-from restores the Go build cache (and, for sources
that are not vendored, the module download cache) into the build's cache volumes before the
build; --cache-to saves what the build used after it succeeds. A cache is an optimisation,
never a dependency: every failure here is a warning, and the build goes on without it.

What travels is an OCI artifact (ARTIFACT), one gzipped tar per cache, tagged under the REF
per platform set and Go image, so that they do not evict each other's caches.

"What the build used": Go touches a build cache entry's mtime when it uses it and the mtime is
more than an hour old. Restored entries are given mtimes two hours in the past, so after the
build an entry newer than an hour before the session began was used (or made) by it; the
save takes those and nothing else, and the artifact does not grow with every commit."""

from __future__ import annotations

import collections
import concurrent.futures
import contextlib
import functools
import gzip
import hashlib
import os
import re
import shlex
import shutil
import tarfile
import tempfile
import uuid
import zlib
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

import anyio
import dagger
import deflate
from dagger import dag

from pipeline.engine.session import Session
from pipeline.errors import PipelineError
from pipeline.recipe import pins
from pipeline.recipe.source import SourceTree
from pipeline.recipe.stages import toolchain, with_go_caches
from pipeline.refs import ImageRef, Platform
from pipeline.registry.threads import bounded
from pipeline.results import GoCache
from pipeline.settings import Settings

if TYPE_CHECKING:
    from pipeline.registry.transport import Budget, Login

T = TypeVar("T")
ARTIFACT = "application/vnd.pipeline.go-cache.v1"
BUILD_LAYER = "application/vnd.pipeline.go-build-cache.v1.tar+gzip"
MOD_LAYER = "application/vnd.pipeline.go-mod-cache.v1.tar+gzip"
TARS = {BUILD_LAYER: "go-build.tar", MOD_LAYER: "go-mod.tar"}  # as the engine reads and writes them
CHUNK = 32 << 20  # bytes of tar per gzip member: the compressor's memory stays bounded
MOUNT = "/pipeline-cache"
MODULE_LIST = "/pipeline-modules.txt"  # the save's list of module cache files
# The modules that provide the packages built (go list -deps), as module@version.
MODULE_FORMAT = "{{with .Module}}{{if not .Main}}{{.Path}}@{{.Version}}{{end}}{{end}}"
RESTORED_AGE = 7200  # seconds: older than the hour after which Go touches an entry it uses
WINDOW = 3660  # seconds before the session's start: what Go's touch leaves (an hour) + slack

# Restore into empty volumes only (a volume the engine has filled is newer than any artifact);
# a tarball that does not unpack leaves the volumes empty again. README, written last, is what
# Go writes in a cache directory it starts: a volume without it is empty or half-written. The
# tarballs come uncompressed: the host inflated them while the engine pulled the images.
# Runs in the helper image: POSIX sh and options busybox and GNU share, nothing of the Go image.
_RESTORE = r"""
set -u
if [ -e "$GOCACHE/README" ]; then echo engine; exit 0; fi
ok=1
tar -xof /pipeline-cache/go-build.tar -C "$GOCACHE" || ok=0
if [ -e /pipeline-cache/go-mod.tar ]; then
  mkdir -p "$GOMODCACHE"
  tar -xof /pipeline-cache/go-mod.tar -C "$GOMODCACHE" || ok=0
fi
if [ "$ok" = 0 ]; then
  rm -rf "$GOCACHE"/* "$GOMODCACHE/cache/download"
  echo corrupt
  exit 0
fi
find "$GOCACHE" -type f -exec touch -c -d "@$(( $(date +%s) - $1 ))" {} +
echo 'This directory holds cached build artifacts from the Go build system.' > "$GOCACHE/README"
echo restored
"""

# The build cache entries used since $1 (seconds since the epoch), and with $2 (a list of the
# module cache files the build's packages come from, made on the host from `go list`) those
# files and the module cache's .mod/.info files, each set as tarballs in MOUNT (one per xargs
# batch: busybox's tar reads no file list). The host merges them into one canonical tarball
# (sorted names, no times, no owners: the same cache pushes the same blob) and compresses it.
_SAVE = r"""
set -eu
pack() { xargs -r sh -c 'tar -cf "$0.$$.tar" "$@"' "/pipeline-cache/$1"; }
mkdir -p /pipeline-cache
touch -d "@$1" /tmp/pipeline-since
cd "$GOCACHE"
find . -type f -newer /tmp/pipeline-since ! -name README ! -name trim.txt | pack go-build
if [ -n "${2:-}" ]; then
  cd "$GOMODCACHE"
  {
    find cache/download -type f \( -name '*.mod' -o -name '*.info' \)
    while read -r file; do
      if [ -f "$file" ]; then echo "$file"; fi
    done < "$2"
  } | pack go-mod
fi
"""

_TAG_UNSAFE = re.compile(r"[^\w.-]")


def wanted(settings: Settings) -> bool:
    """Whether the run uses a registry cache at all."""
    return settings.cache_from is not None or settings.cache_to is not None


def cache_tag(ref: ImageRef, settings: Settings, platforms: Sequence[Platform]) -> str:
    """The tag of the cache for these platforms and this Go image, under `ref`'s tag:
    main → main-linux-amd64-go-3f2a9c1d0e4b (the Go image as the user named it, hashed)."""
    targets = "_".join(_TAG_UNSAFE.sub("-", str(p).replace("/", "-")) for p in platforms)
    if len(targets) > 40:
        targets = hashlib.sha256(targets.encode()).hexdigest()[:12]
    go = hashlib.sha256(settings.go_image.encode()).hexdigest()[:12]
    return f"{ref.tag or 'latest'}-{targets}-go-{go}"


def _caches(helper: str, settings: Settings) -> dagger.Container:
    """The helper image with the build's cache volumes, in a container no cache answers."""
    return with_go_caches(dag.container().from_(helper), settings).with_env_variable(
        "PIPELINE_CACHE_RUN", uuid.uuid4().hex
    )


async def _helper(settings: Settings, session: Session) -> str:
    """The helper image, pinned by digest and held to the lock file as the bases are (once
    per session: the lock file records it with them)."""
    requested = settings.helper_image
    if requested not in session.pins:
        resolved = await dag.container().from_(requested).image_ref()
        lock = pins.read_lock(settings.lock)
        session.pins[requested] = pins.check(requested, resolved, lock, settings.lock)
    return session.pins[requested]


async def _step(work: Awaitable[T], image: str, shown: str) -> T:
    """`work`, a helper step's result; a command that fails there is one PipelineError that
    names the command (`shown`), the image and the first line the command printed."""
    try:
        return await work
    except dagger.ExecError as err:
        said = next(
            (
                line.strip()
                for part in (err.stderr, err.stdout)
                for line in part.splitlines()
                if line.strip()
            ),
            "",
        )
        raise PipelineError(
            f"`{shown}` in {image} exited {err.exit_code}"
            + (f": {said}" if said else ", printing nothing")
        ) from None


def module_files(listed: str) -> list[str]:
    """The module cache files (relative to GOMODCACHE) of `go list`'s module@version lines:
    each module's zip and ziphash, its path and version escaped as the go command escapes
    them (an upper-case letter is ! and the letter in lower case)."""
    escape = functools.partial(re.sub, r"[A-Z]", lambda m: "!" + m.group().lower())
    files = []
    for module in sorted({line.strip() for line in listed.splitlines() if "@" in line}):
        path, _, version = module.rpartition("@")
        if path and version:
            for suffix in ("zip", "ziphash"):
                files.append(f"cache/download/{escape(path)}/@v/{escape(version)}.{suffix}")
    return files


def _without(option: str, ref: ImageRef, cause: str) -> str:
    """The warning of a cache that could not be used."""
    then = "building without it" if option == "--cache-from" else "the build stands, uncached"
    return f"{option} {ref}: {cause}; {then}"


async def restore(settings: Settings, session: Session, platforms: Sequence[Platform]) -> GoCache:
    """Fill the build's empty cache volumes from --cache-from; say what the build starts from:
    "none" (empty volumes), "engine" (volumes this engine filled) or "registry".

    On a new runner the engine's pull of the Go image is most of the wait, and nothing here
    needs that image: the artifact is downloaded, inflated and sent to the engine, and
    unpacked (after a look at the volumes) in the small helper image, while the Go image is
    pulled (pipeline.flows.run). Beside it a probe looks at the volumes; if they are warm, the
    download and the unpack are dropped."""
    ref = settings.cache_from
    option, warned = ("--cache-from", ref) if ref is not None else ("--cache-to", settings.cache_to)
    assert warned is not None
    restored: list[GoCache] = []
    pinned = anyio.Event()
    helper: list[str] = []

    async def pull_and_unpack(ref: ImageRef) -> None:
        tag = cache_tag(ref, settings, platforms)
        source = f"{ref.canonical}:{tag}"
        directory = Path(tempfile.mkdtemp(prefix="cache-from-", dir=session.scratch))
        try:
            files = await _pull(settings, ref, tag, directory)
        except PipelineError as err:
            restored.append(_not_restored(ref, str(err)))
            return
        size = sum(path.stat().st_size for path in files)
        try:
            tars = [await anyio.to_thread.run_sync(_inflate, path) for path in files]
        except (gzip.BadGzipFile, EOFError, zlib.error):
            restored.append(_not_restored(ref, f"{source} does not unpack (a corrupt cache)"))
            return
        except OSError as err:  # the host's disk
            restored.append(_not_restored(ref, f"could not inflate it ({err})"))
            return
        await pinned.wait()
        restored.append(await _unpack(settings, helper[0], ref, source, tars, size))

    async with anyio.create_task_group() as group:
        if ref is not None:
            group.start_soon(pull_and_unpack, ref)
        try:
            helper.append(await _helper(settings, session))
            probe = _caches(helper[0], settings).with_exec(
                ["sh", "-c", 'if [ -e "$GOCACHE/README" ]; then echo engine; else echo none; fi']
            )
            pinned.set()
            found = (await _step(probe.stdout(), helper[0], "sh -c <probe>")).strip()
        except (PipelineError, dagger.QueryError) as err:
            group.cancel_scope.cancel()
            cause = _first_line(err)  # the probe's failure names its image; a pull's, not
            if not isinstance(err, PipelineError):
                cause = f"the helper image {settings.helper_image}: {cause}"
            return GoCache(started_from="none", warnings=(_without(option, warned, cause),))
        if ref is None or found == "engine":
            group.cancel_scope.cancel()
            return GoCache(started_from=found)
    return restored[0]


def _not_restored(ref: ImageRef, cause: str) -> GoCache:
    return GoCache(started_from="none", warnings=(_without("--cache-from", ref, cause),))


def _inflate(path: Path) -> Path:
    """The gzipped tarball `path` (one or more members) as a tarball beside it, its name
    without .gz; `path` is removed."""
    tar = path.with_suffix("")
    with gzip.open(path, "rb") as packed, tar.open("wb") as out:
        shutil.copyfileobj(packed, out, CHUNK)
    path.unlink()
    return tar


def _deflate(tar: Path) -> Path:
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


async def _unpack(
    settings: Settings, helper: str, ref: ImageRef, source: str, files: list[Path], size: int
) -> GoCache:
    """The downloaded tarballs (inflated) unpacked into the build's volumes, in the helper
    image, if they are still empty. They are sent to the engine first, while it may still be
    pulling the images."""
    container = _caches(helper, settings)
    try:
        uploaded = [(path, await _host_file(path).sync()) for path in files]
        for path, file in uploaded:
            container = container.with_mounted_file(f"{MOUNT}/{path.name}", file)
        done = container.with_exec(["sh", "-c", _RESTORE, "sh", str(RESTORED_AGE)])
        outcome = (await _step(done.stdout(), helper, "sh -c <restore script>")).strip()
    except PipelineError as err:
        return _not_restored(ref, str(err))
    except dagger.QueryError as err:
        return _not_restored(ref, f"the restore failed ({_first_line(err)})")
    if outcome == "corrupt":
        return _not_restored(ref, f"{source} does not unpack (a corrupt cache)")
    if outcome == "engine":  # another build on this engine filled the volumes meanwhile
        return GoCache(started_from="engine")
    return GoCache(started_from="registry", restored_from=source, restored_size=size)


def _first_line(err: BaseException) -> str:
    return str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__


def _host_file(path: Path) -> dagger.File:
    return dag.host().file(str(path), no_cache=True)


async def _through_registry(
    settings: Settings, ref: ImageRef, call: Callable[[Login, Budget], T]
) -> T:
    """`call(login, budget)` (a pull or push of `ref`'s registry) in a thread of its own,
    with the run's login for that registry, stopped after --push-timeout."""
    from pipeline.registry import transport  # oras and requests: only a cache needs them

    budget = transport.Budget.of(settings.push_timeout)
    work = functools.partial(call, transport.Login.of(settings, ref), budget)
    return await bounded(work, budget, settings.push_timeout, ref.registry)


async def _pull(settings: Settings, ref: ImageRef, tag: str, directory: Path) -> list[Path]:
    """The artifact's gzipped cache tarballs on the host, named as the restore script expects
    them once inflated (go-build.tar.gz, ...)."""
    from pipeline.registry import remote

    def pull(login: Login, budget: Budget) -> list[tuple[Path, str]]:
        return remote.pull_artifact(ref, tag, login, budget, directory, artifact_type=ARTIFACT)

    layers = await _through_registry(settings, ref, pull)
    files = []
    for path, media_type in layers:
        if media_type in TARS:
            files.append(path.rename(path.with_name(TARS[media_type] + ".gz")))
    if not any(path.name == TARS[BUILD_LAYER] + ".gz" for path in files):
        raise PipelineError(f"{ref.canonical}:{tag} holds no Go build cache")
    return files


async def save(
    settings: Settings,
    tree: SourceTree,
    session: Session,
    platforms: Sequence[Platform],
    started: GoCache,
) -> GoCache:
    """After a successful build: push the cache entries it used to --cache-to. `started` (what
    restore said) comes back with what was saved, or with one more warning."""
    ref = settings.cache_to
    assert ref is not None
    await session.clock.wait()
    modules = tree.module and not tree.vendored
    directory = Path(tempfile.mkdtemp(prefix="cache-to-", dir=session.scratch))
    tag = cache_tag(ref, settings, platforms)
    try:
        helper = await _helper(settings, session)
        packer = _caches(helper, settings)
        script = ["sh", "-c", _SAVE, "sh", str(int(session.started) - WINDOW)]
        if modules:
            listed = await _used_modules(settings, tree)
            packer = packer.with_new_file(MODULE_LIST, "".join(f"{f}\n" for f in listed))
            script.append(MODULE_LIST)
        packing = packer.with_exec(script).directory(MOUNT).export(str(directory))
        await _step(packing, helper, "sh -c <save script>")
        for name in (TARS[BUILD_LAYER], TARS[MOD_LAYER]) if modules else (TARS[BUILD_LAYER],):
            await anyio.to_thread.run_sync(merge, directory, name)
        pushed, size = await _push(settings, ref, tag, directory, modules=bool(modules))
    except (PipelineError, dagger.QueryError, OSError, tarfile.TarError) as err:
        warning = _without("--cache-to", ref, _first_line(err))
        return replace(started, warnings=(*started.warnings, warning))
    return replace(started, saved_to=f"{ref.canonical}:{tag}@{pushed}", saved_size=size)


async def _used_modules(settings: Settings, tree: SourceTree) -> list[str]:
    """The module cache files of the modules the build's packages come from: `go list`, the
    one step here that needs the Go image, asks nothing of it but `go`."""
    command = ["go", "list", "-deps", *(["-test"] if settings.test else []), "-f", MODULE_FORMAT]
    listing = toolchain(settings, tree).with_exec([*command, "./..."])
    shown = shlex.join([*command[:-2], "./..."])
    return module_files(await _step(listing.stdout(), settings.go_image, shown))


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


async def _push(
    settings: Settings, ref: ImageRef, tag: str, directory: Path, *, modules: bool
) -> tuple[str, int]:
    from pipeline.registry import remote

    layers = (BUILD_LAYER, MOD_LAYER) if modules else (BUILD_LAYER,)
    files = [
        (await anyio.to_thread.run_sync(_deflate, directory / TARS[layer]), layer)
        for layer in layers
    ]
    annotations = {"org.opencontainers.image.description": f"Go caches for {settings.go_image}"}

    def push(login: Login, budget: Budget) -> tuple[str, int]:
        return remote.push_artifact(
            files, ref, tag, login, budget, artifact_type=ARTIFACT, annotations=annotations
        )

    return await _through_registry(settings, ref, push)
