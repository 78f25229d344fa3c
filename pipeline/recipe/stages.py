"""Small lazy builders the variants share. Each describes a container or a file and returns
it; nothing runs until a flow awaits a leaf."""

from __future__ import annotations

import hashlib

import dagger
from dagger import dag

from pipeline.recipe.modules import with_modules
from pipeline.recipe.source import SourceTree
from pipeline.refs import Platform
from pipeline.settings import GoBuild, Settings

SOURCE_DIR = "/src"
GO_MOD_CACHE = "/go/pkg/mod"
GO_BUILD_CACHE = "/root/.cache/go-build"
OUT_DIR = "/out"
# Static and small: no cgo (the binary must run on a base without libc), no paths of this
# machine in it (-trimpath), no symbol table or DWARF (-s -w).
# -buildvcs=false: no git state stamped in; the build depends on the files alone.
STATIC_FLAGS = ("-trimpath", "-buildvcs=false", "-ldflags=-s -w")
NONROOT = "65532:65532"  # distroless's nonroot; numeric, as Kubernetes runAsNonRoot requires
CA_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"


def source_dir(tree: SourceTree, *, reload: bool = False) -> dagger.Directory:
    """The files of the tree that a Go build reads, uploaded from the host (again, with
    `reload`: a session reads a host directory once otherwise)."""
    return dag.host().directory(str(tree.root), include=list(tree.include), no_cache=reload)


def reloads(settings: Settings) -> bool:
    """Whether the source must be read from the host again (a session reads it once)."""
    return settings.reload_source or bool(settings.cache_bust)


def golang(settings: Settings) -> dagger.Container:
    """The Go toolchain image; with a cache bust, every step after it runs again."""
    container = dag.container().from_(settings.go_image)
    if settings.cache_bust:
        container = container.with_env_variable("PIPELINE_CACHE_BUST", settings.cache_bust)
    return container


def go_env(container: dagger.Container, tree: SourceTree) -> dagger.Container:
    """How the go command must treat the tree: offline if vendored, GOPATH mode if no go.mod."""
    if tree.vendored:
        container = container.with_env_variable("GOFLAGS", "-mod=vendor").with_env_variable(
            "GOPROXY", "off"
        )
    if not tree.module:
        # The write-up's `go env -w GO111MODULE=auto`: a lone main.go builds without go.mod.
        container = container.with_env_variable("GO111MODULE", "auto")
    return container


def cache_volumes(settings: Settings) -> tuple[str, str] | None:
    """The keys of the Go build and module cache volumes; None for a build on fresh caches
    (verify's second build: nothing a cache holds can reach it).

    A build that uses a registry cache gets volumes of its own, one pair per cache REF and
    trust level: what a --cache-to build saves comes from volumes that only builds allowed to
    write that cache have written (a pull request's build on a shared engine, reading the
    same cache, cannot slip entries into them)."""
    if settings.cache_bust:
        return None
    ref, trust = (
        (settings.cache_to, "write") if settings.cache_to else (settings.cache_from, "read")
    )
    if ref is None:
        return "pipeline-go-build", "pipeline-go-mod"
    named = f"{trust} {ref.qualified}:{ref.push_tag}"
    key = hashlib.sha256(named.encode()).hexdigest()[:16]
    return f"pipeline-go-build-{key}", f"pipeline-go-mod-{key}"


def with_go_caches(container: dagger.Container, settings: Settings) -> dagger.Container:
    """The Go build and module caches mounted as the settings' volumes, or (on fresh caches)
    empty directories of the container's own."""
    volumes = cache_volumes(settings)
    if volumes is None:
        return container.with_env_variable("GOCACHE", "/tmp/go-build").with_env_variable(
            "GOMODCACHE", "/tmp/go-mod"
        )
    build, mod = volumes
    return (
        container.with_mounted_cache(GO_MOD_CACHE, dag.cache_volume(mod))
        .with_mounted_cache(GO_BUILD_CACHE, dag.cache_volume(build))
        .with_env_variable("GOCACHE", GO_BUILD_CACHE)
        .with_env_variable("GOMODCACHE", GO_MOD_CACHE)  # whatever the image's GOPATH
    )


def toolchain(settings: Settings, tree: SourceTree) -> dagger.Container:
    """The golang image with the source mounted at /src and the module and build caches as
    volumes."""
    # Mounted, not copied into the image's filesystem: nothing built here ships with the
    # source, and a copy of the tree (age's: 14 MB, vendored) would be made on every change.
    container = (
        with_go_caches(golang(settings), settings)
        .with_workdir(SOURCE_DIR)
        .with_mounted_directory(SOURCE_DIR, source_dir(tree, reload=reloads(settings)))
    )
    return with_modules(go_env(container, tree), settings, tree)


def build_flags(build: GoBuild, *, static: bool = True) -> list[str]:
    """The `go build` flags: STATIC_FLAGS as `build` keeps them (`static`: the slim
    variants'; the naive image's Dockerfile has none), then the user's ldflags (after -s -w),
    tags and further flags."""
    flags = []
    if static and build.trimpath:
        flags.append("-trimpath")
    if static:
        flags.append("-buildvcs=false")
    ldflags = " ".join(f for f in ("-s -w" if static and build.strip else "", build.ldflags) if f)
    if ldflags:
        flags.append(f"-ldflags={ldflags}")
    if build.tags:
        flags.append(f"-tags={','.join(build.tags)}")
    return [*flags, *build.flags]


def with_build_env(container: dagger.Container, build: GoBuild) -> dagger.Container:
    """The user's build environment (GOEXPERIMENT, GOAMD64, ...) on the go command."""
    for key, value in build.env:
        container = container.with_env_variable(key, value)
    return container


def vet_and_test(settings: Settings, tree: SourceTree) -> dagger.Container:
    """`go vet ./...` then `go test ./...` with the build's tags and environment, in a
    container of their own: nothing they write reaches an image."""
    build = settings.go_build
    tags = [f"-tags={','.join(build.tags)}"] if build.tags else []
    return (
        with_build_env(toolchain(settings, tree), build)
        .with_exec(["go", "vet", *tags, "./..."])
        .with_exec(["go", "test", *tags, "./..."])
    )


def go_build(
    container: dagger.Container, settings: Settings, tree: SourceTree, platform: Platform
) -> dagger.Container:
    """`go build` of the main package into OUT_DIR/<name>, static, for `platform`."""
    return _compiled(container, settings, platform, f"{OUT_DIR}/{settings.name}", (tree.package,))


def go_build_all(
    container: dagger.Container, settings: Settings, packages: tuple[str, ...], platform: Platform
) -> dagger.Container:
    """One `go build` of several main packages into OUT_DIR/<the package's last element>:
    what they share is compiled once, in one process. Every image of the group describes the
    same command, so the engine runs it once."""
    return _compiled(container, settings, platform, f"{OUT_DIR}/", packages)


def _compiled(
    container: dagger.Container,
    settings: Settings,
    platform: Platform,
    output: str,
    packages: tuple[str, ...],
) -> dagger.Container:
    """`go build -o output packages`, static, with the build's flags and environment, for
    `platform`."""
    container = with_build_env(container.with_env_variable("CGO_ENABLED", "0"), settings.go_build)
    for key, value in platform.go_env().items():
        container = container.with_env_variable(key, value)
    return container.with_exec(
        ["go", "build", *build_flags(settings.go_build), "-o", output, *packages]
    )


def binary_name(package: str) -> str:
    """What `go build -o DIR/` names the binary of `package` (./cmd/api → api)."""
    return package.rstrip("/").rsplit("/", 1)[-1]


def scratch_files(settings: Settings) -> dagger.Directory:
    """What a program on an empty base still needs: users (root, nonroot 65532), the CA
    bundle (from the golang image) and a /tmp."""
    return (
        dag.directory()
        .with_new_file(
            "etc/passwd",
            "root:x:0:0:root:/root:/sbin/nologin\n"
            "nonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n",
        )
        .with_new_file("etc/group", "root:x:0:\nnonroot:x:65532:\n")
        .with_file(CA_BUNDLE.lstrip("/"), golang(settings).file(CA_BUNDLE))
        .with_new_directory("tmp", permissions=0o1777)
        .with_new_directory("home/nonroot", permissions=0o755)
    )


def runtime_base(settings: Settings, platform: Platform) -> dagger.Container:
    """The base the binary ships on: an image reference, or nothing at all for `scratch`."""
    container = dag.container(platform=dagger.Platform(str(platform)))
    if settings.on_scratch:
        return container
    return container.from_(settings.runtime_image)
