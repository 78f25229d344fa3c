"""What to build, decided once: the Variant enum and a frozen Settings value (the checks of
the flags that make one are the CLI's, pipeline.cli.checks; platforms and image references
are pipeline.refs'). No I/O, no dagger, no typer."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from pathlib import Path

from pipeline.image.signing import SignatureFormat, Signer
from pipeline.provenance import Provenance
from pipeline.refs import (
    ImageRef,
    Platform,
)

SCRATCH = "scratch"
DEFAULT_GO_IMAGE = "golang:1.26"
DEFAULT_RUNTIME_IMAGE = "alpine:3.22"
# Where the Go caches are unpacked and packed (--cache-from/--cache-to): any image with a POSIX
# shell, tar, find, touch and xargs; nothing but `go` is asked of the Go image.
DEFAULT_HELPER_IMAGE = "busybox:1.37"
DEFAULT_NAME = "helloworld"
DEFAULT_SOURCE = Path("go-src")
BUILD_DIR = Path("build")
WORKDIR = "/myapp"  # the write-up's WORKDIR, where the image holds the binary
# --files: the directory shipped beside the binary, and the variable that tells the program
# where it is (as ko's KO_DATA_PATH does).
DATA_DIR = f"{WORKDIR}/data"
DATA_ENV = "DATA_PATH"


class Variant(enum.StrEnum):
    """The three ways of containerizing the program, from the write-up we follow."""

    NAIVE = "naive"
    BUILDER = "builder"
    MULTISTAGE = "multistage"


@dataclass(frozen=True)
class Secret:
    """A value that must never be printed: its repr and str hide it."""

    value: str = field(repr=False)

    def __repr__(self) -> str:
        return "Secret(***)"

    __str__ = __repr__


@dataclass(frozen=True)
class GoBuild:
    """How `go build` is called: the defaults (-trimpath, -ldflags=-s -w) unless turned off,
    the user's ldflags (templates filled in), build tags, further flags and environment."""

    trimpath: bool = True
    strip: bool = True  # -s -w: no symbol table, no DWARF
    ldflags: str = ""
    tags: tuple[str, ...] = ()
    flags: tuple[str, ...] = ()  # further `go build` flags, as given (e.g. -gcflags=all=-l)
    env: tuple[tuple[str, str], ...] = ()  # GOEXPERIMENT, GOAMD64, ...


@dataclass(frozen=True)
class ImageConfig:
    """What the image says beyond its entrypoint: CMD arguments, environment, exposed ports,
    working directory, the user's labels and annotations, and a directory of files shipped
    beside the binary (its path in DATA_PATH)."""

    cmd: tuple[str, ...] = ()
    env: tuple[tuple[str, str], ...] = ()
    ports: tuple[str, ...] = ()  # 8080/tcp, 53/udp
    workdir: str | None = None
    labels: tuple[tuple[str, str], ...] = ()
    annotations: tuple[tuple[str, str], ...] = ()
    files: Path | None = None


@dataclass(frozen=True)
class Modules:
    """How the go command reaches private modules: GOPRIVATE, GOPROXY and GONOSUMDB as given,
    and what only the `go mod download` step sees: a .netrc (--netrc, --module-token) and a
    CA certificate of the module hosts (--module-ca)."""

    goprivate: str = ""
    goproxy: str = ""
    gonosumdb: str = ""
    netrc: Secret | None = None
    ca: Path | None = None

    def env(self) -> tuple[tuple[str, str], ...]:
        given = (("GOPRIVATE", self.goprivate), ("GOPROXY", self.goproxy))
        return tuple((k, v) for k, v in (*given, ("GONOSUMDB", self.gonosumdb)) if v)

    @property
    def private_hosts(self) -> tuple[str, ...]:
        """The hosts GOPRIVATE names (a pattern's first element, where it has no glob)."""
        first = (p.strip().split("/")[0] for p in self.goprivate.split(","))
        return tuple(dict.fromkeys(h for h in first if h and not set(h) & set("*?[")))


@dataclass(frozen=True)
class Settings:
    """Everything one run needs, resolved from flags and environment, built once."""

    variant: Variant
    source: Path = DEFAULT_SOURCE
    package: str = "."
    test: bool = True
    go_image: str = DEFAULT_GO_IMAGE
    runtime_image: str = DEFAULT_RUNTIME_IMAGE
    name: str = DEFAULT_NAME
    platforms: tuple[Platform, ...] = ()  # empty: the engine's own platform
    output: Path | None = None
    load: bool = False
    publish: ImageRef | None = None
    tags: tuple[str, ...] = ()  # further tags of --publish's repository, at the same digest
    registry_username: str | None = None
    registry_password: Secret | None = None
    run: bool = True
    json_path: Path | None = None
    # Reproducible builds (builder, multistage): the epoch and git labels; None keeps the
    # engine's timestamps (naive stays naive).
    provenance: Provenance | None = None
    user: str | None = None  # None: 65532:65532 on scratch and bases with that user
    lock: Path | None = None
    registry_ca: Path | None = None
    # Registry → the mirror the engine pulls it through: the bases' layers are read there too.
    registry_mirrors: tuple[tuple[str, str], ...] = ()
    push_timeout: float = 300.0  # seconds: a push that takes longer stops, and says so
    # The Go caches through a registry: read before the build, written after it succeeds.
    cache_from: ImageRef | None = None
    cache_to: ImageRef | None = None
    helper_image: str = DEFAULT_HELPER_IMAGE
    cache_bust: str = ""  # verify: a value that forces every build step to run again
    reload_source: bool = False  # --watch: read the source from the host again
    label: str = ""  # tells apart several images of one variant (compare): multistage-scratch
    quiet: bool = False  # the summary and errors only: no progress on stderr
    go_build: GoBuild = GoBuild()
    image: ImageConfig = ImageConfig()
    modules: Modules = Modules()
    sign_key: Signer | None = None  # signs what --publish pushes
    signature_format: SignatureFormat = SignatureFormat.LEGACY
    provenance_file: Path | None = None  # where the SLSA provenance statement is written

    @property
    def key(self) -> str:
        """`multistage`, or `multistage-scratch` when labelled: the image's tag and budget key."""
        return self.label or str(self.variant)

    @property
    def tag(self) -> str:
        """`<name>:<key>`, the image's local name."""
        return f"{self.name}:{self.key}"

    @property
    def login_registry(self) -> str | None:
        """The registry the login is for: --publish's, else the cache's (never sent elsewhere)."""
        ref = self.publish or self.cache_to or self.cache_from
        return None if ref is None else ref.registry

    @property
    def on_scratch(self) -> bool:
        return self.runtime_image == SCRATCH

    @property
    def builder_output(self) -> Path | None:
        """Where the builder pattern's build image is exported: <name>-build.tar beside
        --output (None without one)."""
        return None if self.output is None else self.output.parent / f"{self.name}-build.tar"
