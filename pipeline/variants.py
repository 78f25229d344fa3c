"""One recipe per variant, one signature, one registry (VARIANTS).

A recipe describes the variant's image for each target platform. Only the builder pattern
needs to await on the way (its binary makes a hop through the host), so every recipe is
`async` and the registry keeps a single signature.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import dagger
from dagger import dag

from pipeline.errors import UsageError
from pipeline.settings import Platform, Settings, Variant
from pipeline.source import SourceTree
from pipeline.stages import (
    STATIC_FLAGS,
    WORKDIR,
    go_binary,
    go_build,
    go_env,
    runtime_base,
    source_dir,
    toolchain,
)


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
    extras: tuple[Image, ...] = ()


Recipe = Callable[[Target], Awaitable[Built]]


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
        dag.container()
        .from_(settings.go_image)
        .with_workdir(WORKDIR)
        .with_directory(WORKDIR, source_dir(target.tree))
    )
    return go_env(container, target.tree)


async def naive(target: Target) -> Built:
    """The write-up's Dockerfile as it is: the whole toolchain, the source and the binary in
    one image (hundreds of MB); the "before"."""
    _native_only(target, "the naive image compiles inside itself")
    name = target.settings.name
    image = (
        _golang_with_source(target)
        .with_exec(["go", "env", "-w", "GO111MODULE=auto"])
        .with_exec(["go", "build", "-o", name, target.tree.package])
        .with_entrypoint([f"./{name}"])
    )
    golang = dag.container().from_(target.settings.go_image)
    return Built(Image(target.settings.tag, (image,), target.settings.go_image, golang), image)


async def builder(target: Target) -> Built:
    """The builder pattern: a builder image compiles; the binary is copied out to the host
    (`docker container cp`); a second image is built from that host file; the host copy is
    removed, whatever happens."""
    settings, name = target.settings, target.settings.name
    build_image = (
        _golang_with_source(target)
        .with_env_variable("CGO_ENABLED", "0")
        .with_exec(["go", "build", *STATIC_FLAGS, "-o", name, target.tree.package])
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
                    ["go", "build", *STATIC_FLAGS, "-o", name, target.tree.package]
                )
            copy = target.host_dir / f"{name}-{str(platform).replace('/', '-')}"
            copies.append(copy)
            await compiled.file(f"{WORKDIR}/{name}").export(str(copy))
            image = (
                runtime_base(settings, platform)
                .with_workdir(WORKDIR)
                .with_file(f"{WORKDIR}/{name}", dag.host().file(str(copy)), permissions=0o755)
                .with_entrypoint([f"./{name}"])
            )
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
        extras=(Image(f"{name}-build:latest", (build_image,), settings.go_image, golang),),
    )


async def multistage(target: Target) -> Built:
    """The Dagger way: the binary's File goes from the golang container straight into a
    minimal runtime container; nothing touches the host."""
    settings, name = target.settings, target.settings.name
    app = f"{WORKDIR}/{name}"
    images = tuple(
        runtime_base(settings, platform)
        .with_workdir(WORKDIR)
        .with_file(app, go_binary(settings, target.tree, platform))
        .with_entrypoint([app])
        for platform in target.platforms
    )
    first = target.platforms[0]
    build_stage = go_build(toolchain(settings, target.tree), target.tree, name, first)
    return Built(Image(settings.tag, images, settings.runtime_image, _base(target)), build_stage)


def _base(target: Target) -> dagger.Container | None:
    """The runtime base on the engine's platform, as the image was built on it."""
    if target.settings.scratch:
        return None
    return runtime_base(target.settings, target.native)


VARIANTS: dict[Variant, Recipe] = {
    Variant.NAIVE: naive,
    Variant.BUILDER: builder,
    Variant.MULTISTAGE: multistage,
}
