"""One recipe per variant, one signature, one registry (VARIANTS).

A recipe describes the variant's image for each target platform. Two of them await on the
way: the builder pattern's binary makes a hop through the host, and builder and multistage
read the runtime base's /etc/passwd to choose the image's user (slim_image). So every recipe
is `async` and the registry keeps a single signature.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import dagger
from dagger import dag

from pipeline.errors import UsageError
from pipeline.provenance import labels
from pipeline.recipe.image_settings import configured, with_files
from pipeline.recipe.modules import with_modules
from pipeline.recipe.source import SourceTree
from pipeline.recipe.stages import (
    NONROOT,
    OUT_DIR,
    binary_name,
    build_flags,
    go_build,
    go_build_all,
    go_env,
    golang,
    reloads,
    runtime_base,
    scratch_files,
    source_dir,
    toolchain,
    with_build_env,
)
from pipeline.refs import Platform
from pipeline.settings import WORKDIR, Settings, Variant


@dataclass(frozen=True)
class Target:
    """What a recipe builds for: the run's settings, the checked source, the platforms
    (the first is the one run and loaded), the engine's own platform, and a host directory
    the recipe may use for files it must remove again."""

    settings: Settings
    tree: SourceTree
    platforms: tuple[Platform, ...]
    native: Platform
    host_dir: Path
    # Main packages built with this one in one `go build` (several images of one run, the
    # same build settings): multistage's binary comes from it.
    together: tuple[str, ...] = ()


@dataclass(frozen=True)
class Image:
    """An image a recipe made: its local name, one container per platform, and the base it
    stands on (its reference, and the container of that base; None for scratch)."""

    ref: str
    containers: tuple[dagger.Container, ...]
    base_ref: str
    base: dagger.Container | None


@dataclass(frozen=True)
class Built:
    """The variant's image, any other image the variant makes on the way, and the container
    in which `go build` ran (to tell whether it ran now or came from the cache)."""

    image: Image
    build_stage: dagger.Container
    binary_path: str  # where build_stage holds the binary
    extras: tuple[Image, ...] = ()
    # Where the image holds the binary when its top layer holds nothing else (slim_image on a
    # base): that layer can be foreseen from the binary (pipeline.image.canonical.file_layer).
    binary_layer: str | None = None


@dataclass(frozen=True)
class Recipe:
    """A variant's recipe, and what it says of itself: whether `go build` runs with the Go
    cache volumes (the write-up's Dockerfiles compile without them: the Go caches then serve
    go vet and go test only)."""

    build: Callable[[Target], Awaitable[Built]]
    compiles_with_go_caches: bool


def _native_only(target: Target, why: str) -> None:
    foreign = [str(p) for p in target.platforms if p != target.native]
    if foreign:
        raise UsageError(
            f"--platform {', '.join(foreign)}: {why}; it runs only on the engine's platform "
            f"({target.native}). Use multistage to cross-compile."
        )


def _golang_with_source(target: Target) -> dagger.Container:
    """FROM golang, WORKDIR /myapp, the source copied in: the write-up's first lines."""
    settings = target.settings
    container = (
        golang(settings)
        .with_workdir(WORKDIR)
        .with_directory(WORKDIR, source_dir(target.tree, reload=reloads(settings)))
    )
    return with_modules(go_env(container, target.tree), settings, target.tree)


async def naive(target: Target) -> Built:
    """The write-up's Dockerfile as it is: the whole toolchain, the source and the binary in
    one image (hundreds of MB); the "before"."""
    _native_only(target, "the naive image compiles inside itself")
    name, build = target.settings.name, target.settings.go_build
    image = (
        with_build_env(_golang_with_source(target), build)
        .with_exec(["go", "env", "-w", "GO111MODULE=auto"])
        .with_exec(
            ["go", "build", *build_flags(build, static=False), "-o", name, target.tree.package]
        )
        .with_entrypoint([f"./{name}"])
    )
    image = configured(with_files(image, target.settings), target.settings)
    golang = dag.container().from_(target.settings.go_image)
    return Built(
        Image(target.settings.tag, (image,), target.settings.go_image, golang),
        image,
        f"{WORKDIR}/{name}",
    )


async def builder(target: Target) -> Built:
    """The builder pattern: a builder image compiles; the binary is copied out to the host
    (`docker container cp`); a second image is built from that host file; the host copy is
    removed, whatever happens."""
    settings, name = target.settings, target.settings.name
    flags = build_flags(settings.go_build)
    build_image = (
        with_build_env(
            _golang_with_source(target).with_env_variable("CGO_ENABLED", "0"), settings.go_build
        )
        .with_exec(["go", "build", *flags, "-o", name, target.tree.package])
        .with_entrypoint([f"./{name}"])
    )
    images: list[dagger.Container] = []
    copies: list[Path] = []
    try:
        for platform in target.platforms:
            compiled = build_image
            if platform != target.native:
                for key, value in platform.go_env().items():
                    compiled = compiled.with_env_variable(key, value)
                compiled = compiled.with_exec(
                    ["go", "build", *flags, "-o", name, target.tree.package]
                )
            copy = target.host_dir / f"{name}-{str(platform).replace('/', '-')}"
            copies.append(copy)
            await compiled.file(f"{WORKDIR}/{name}").export(str(copy))
            binary = dag.host().file(str(copy), no_cache=bool(settings.cache_bust))
            image = await slim_image(target, platform, binary, entrypoint=f"./{name}")
            # Read the host file into the engine now: it is deleted below.
            images.append(await image.sync())
    finally:
        # Plain (blocking) unlinks: under cancellation (^C) an await here would not run.
        for copy in copies:
            copy.unlink(missing_ok=True)
    golang = dag.container().from_(settings.go_image)
    return Built(
        Image(settings.tag, tuple(images), settings.runtime_image, _base(target)),
        build_image,
        f"{WORKDIR}/{name}",
        extras=(Image(f"{name}-build:latest", (build_image,), settings.go_image, golang),),
        binary_layer=_binary_layer(target),
    )


async def multistage(target: Target) -> Built:
    """The Dagger way: the binary's File goes from the golang container straight into a
    minimal runtime container; nothing touches the host."""
    settings, name = target.settings, target.settings.name
    app, binary = f"{WORKDIR}/{name}", f"{OUT_DIR}/{name}"
    # One build per platform, described once: the first is also the build stage. Built
    # together with other images' packages, the binary has its package's name.
    if target.together:
        binary = f"{OUT_DIR}/{binary_name(target.tree.package)}"
    builds = [
        go_build_all(toolchain(settings, target.tree), settings, target.together, platform)
        if target.together
        else go_build(toolchain(settings, target.tree), settings, target.tree, platform)
        for platform in target.platforms
    ]
    images = tuple(
        [
            await slim_image(target, platform, build.file(binary), entrypoint=app)
            for platform, build in zip(target.platforms, builds, strict=True)
        ]
    )
    return Built(
        Image(settings.tag, images, settings.runtime_image, _base(target)),
        builds[0],
        binary,
        binary_layer=_binary_layer(target),
    )


_NONROOT: dict[tuple[str, Platform], bool] = {}  # a base pinned by digest never changes


async def _has_nonroot(base: dagger.Container, ref: str, platform: Platform) -> bool:
    """Whether the base `ref` defines user 65532 (distroless-style bases do; busybox does
    not); asked once per process where `ref` is pinned by digest (each --watch rebuild)."""
    if (ref, platform) in _NONROOT:
        return _NONROOT[ref, platform]
    try:
        passwd = await base.file("/etc/passwd").contents()
    except dagger.QueryError:
        passwd = ""  # no /etc/passwd at all
    found = any(line.split(":")[2:3] == ["65532"] for line in passwd.splitlines())
    if "@" in ref:
        _NONROOT[ref, platform] = found
    return found


async def slim_image(
    target: Target, platform: Platform, binary: dagger.File, *, entrypoint: str
) -> dagger.Container:
    """The binary on the runtime base: in one layer with every timestamp at the epoch,
    non-root where the base allows it, labelled from git, the base named in annotations."""
    settings, name = target.settings, target.settings.name
    base = runtime_base(settings, platform)
    rootfs = dag.directory().with_file(f"{WORKDIR.lstrip('/')}/{name}", binary, permissions=0o755)
    user = settings.user
    if settings.on_scratch:
        rootfs = rootfs.with_directory(".", scratch_files(settings))
        user = user or NONROOT
    elif user is None and await _has_nonroot(base, settings.runtime_image, platform):
        user = NONROOT
    provenance = settings.provenance
    if provenance is not None:
        rootfs = rootfs.with_timestamps(provenance.epoch)
    if settings.image.workdir is not None and not entrypoint.startswith("/"):
        entrypoint = f"{WORKDIR}/{entrypoint.removeprefix('./')}"  # the binary stays put
    # --files in a layer of their own, below the binary's: that layer stays the binary alone.
    image = with_files(base, target.settings).with_directory("/", rootfs)
    image = image.with_workdir(WORKDIR).with_entrypoint([entrypoint])
    if user:
        image = image.with_user(user)
    if provenance is not None:
        for key, value in labels(provenance, name).items():
            image = image.with_label(key, value)
    if not settings.on_scratch and "@" in settings.runtime_image:
        base_name, _, base_digest = settings.runtime_image.partition("@")
        image = image.with_annotation("org.opencontainers.image.base.name", base_name)
        image = image.with_annotation("org.opencontainers.image.base.digest", base_digest)
    return configured(image, settings)


def _binary_layer(target: Target) -> str | None:
    """Where slim_image puts the binary, if its layer holds nothing else (on scratch, the
    users, the CA bundle and /tmp share it)."""
    return None if target.settings.on_scratch else f"{WORKDIR}/{target.settings.name}"


def _base(target: Target) -> dagger.Container | None:
    """The runtime base on the engine's platform, as the image was built on it."""
    if target.settings.on_scratch:
        return None
    return runtime_base(target.settings, target.native)


def bases_of(
    settings: Settings, platforms: tuple[Platform, ...], native: Platform
) -> tuple[tuple[str, Platform], ...]:
    """What the variant's images stand on, as (base, platform): the runtime base for each
    platform (none on scratch), and the Go image on the engine's platform where an image is
    made in it (naive's, the builder pattern's build image)."""
    pairs = []
    if settings.variant is not Variant.NAIVE and not settings.on_scratch:
        pairs += [(settings.runtime_image, platform) for platform in platforms]
    if settings.variant is not Variant.MULTISTAGE:
        pairs.append((settings.go_image, native))
    return tuple(pairs)


VARIANTS: dict[Variant, Recipe] = {
    Variant.NAIVE: Recipe(naive, compiles_with_go_caches=False),
    Variant.BUILDER: Recipe(builder, compiles_with_go_caches=False),
    Variant.MULTISTAGE: Recipe(multistage, compiles_with_go_caches=True),
}
