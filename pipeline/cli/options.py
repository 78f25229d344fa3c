"""The command line's options: each flag's declaration (help text, environment variable), and
BuildFlags, the build commands' flags as one frozen value whose fields carry those
declarations (the binary's and image's in pipeline.cli.image_options, the private modules' in
pipeline.cli.module_options). Part of the CLI, with pipeline.cli.commands: the only modules
that import Typer."""

from __future__ import annotations

import inspect
from dataclasses import MISSING, dataclass, field, fields
from pathlib import Path
from typing import Annotated, Any, get_type_hints

import typer

from pipeline.cli import image_options as io
from pipeline.cli import module_options as mo
from pipeline.cli import sign_options as so
from pipeline.errors import PASSWORD_ENV
from pipeline.image.signing import SignatureFormat
from pipeline.settings import (
    DEFAULT_GO_IMAGE,
    DEFAULT_HELPER_IMAGE,
    DEFAULT_NAME,
    DEFAULT_RUNTIME_IMAGE,
    DEFAULT_SOURCE,
    SCRATCH,
)

SourceOpt = Annotated[
    Path,
    typer.Option(help="The Go module to build.", envvar="PIPELINE_SOURCE", show_default=True),
]
PackageOpt = Annotated[
    str,
    typer.Option(
        help="The main package to build, as `go build` takes it (e.g. ./cmd/server).",
        envvar="PIPELINE_PACKAGE",
    ),
]
TestOpt = Annotated[
    bool,
    typer.Option(
        "--test/--no-test",
        help="Run `go vet ./...` and `go test ./...` first.",
        envvar="PIPELINE_TEST",
    ),
]
GoImageOpt = Annotated[
    str, typer.Option(help="The Go toolchain image.", envvar="PIPELINE_GO_IMAGE")
]
RuntimeImageOpt = Annotated[
    str,
    typer.Option(
        help=f"The base the binary ships on; `{SCRATCH}` for an empty one.",
        envvar="PIPELINE_RUNTIME_IMAGE",
    ),
]
NameOpt = Annotated[str, typer.Option(help="The image's name.", envvar="PIPELINE_NAME")]
PlatformOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--platform",
        help="Target platform, repeatable (e.g. linux/amd64 linux/arm64); default the engine's.",
        envvar="PIPELINE_PLATFORM",
        show_default=False,
    ),
]
OutputOpt = Annotated[
    Path | None,
    typer.Option(
        help="Where to write the OCI tarball [default: build/<name>-<variant>.tar].",
        envvar="PIPELINE_OUTPUT",
        show_default=False,
    ),
]
NoOutputOpt = Annotated[
    bool, typer.Option("--no-output", help="Write no tarball.", envvar="PIPELINE_NO_OUTPUT")
]
LoadOpt = Annotated[
    bool,
    typer.Option(
        "--load",
        help="Load the image into the local Docker, tagged <name>:<variant>.",
        envvar="PIPELINE_LOAD",
    ),
]
PublishOpt = Annotated[
    str | None,
    typer.Option(
        help="Push the image to this reference (REGISTRY/REPO:TAG).",
        envvar="PIPELINE_PUBLISH",
        show_default=False,
    ),
]
UsernameOpt = Annotated[
    str | None,
    typer.Option(
        help=f"Registry user for --publish; the password comes from ${PASSWORD_ENV} only.",
        envvar="PIPELINE_REGISTRY_USERNAME",
        show_default=False,
    ),
]
RunOpt = Annotated[
    bool,
    typer.Option(
        "--run/--no-run", help="Run the image once and show what it printed.", envvar="PIPELINE_RUN"
    ),
]
JsonOpt = Annotated[
    Path | None,
    typer.Option(
        "--json",
        help="Write the result as JSON to this path.",
        envvar="PIPELINE_JSON",
        show_default=False,
    ),
]
UserOpt = Annotated[
    str | None,
    typer.Option(
        "--user",
        help="The image's user, UID[:GID] [default: 65532:65532 on scratch and "
        "on bases that define it, else the base's].",
        envvar="PIPELINE_USER",
        show_default=False,
    ),
]
LockOpt = Annotated[
    Path | None,
    typer.Option(
        "--lock",
        help="Lock file of base image digests: written if missing, else held "
        "to (a tag that moved fails the run).",
        envvar="PIPELINE_LOCK",
        show_default=False,
    ),
]
RegistryCaOpt = Annotated[
    Path | None,
    typer.Option(
        "--registry-ca",
        help="CA certificate (PEM) of the --publish (and cache) registry.",
        envvar="PIPELINE_REGISTRY_CA",
        show_default=False,
    ),
]
RegistryMirrorOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--registry-mirror",
        help="REGISTRY=MIRROR, repeatable: a registry the engine pulls through a mirror "
        "(its engine.json), so that the bases' layers are read from the mirror too.",
        envvar="PIPELINE_REGISTRY_MIRROR",
        show_default=False,
    ),
]
PushTimeoutOpt = Annotated[
    float,
    typer.Option(
        "--push-timeout",
        help="Seconds a --publish push may take before it stops and the run fails.",
        envvar="PIPELINE_PUSH_TIMEOUT",
    ),
]
CacheFromOpt = Annotated[
    str | None,
    typer.Option(
        "--cache-from",
        help="Start the Go build (and module) cache from what --cache-to saved at this "
        "REGISTRY/REPO:TAG. A missing or broken cache is a warning: the build goes on cold.",
        envvar="PIPELINE_CACHE_FROM",
        show_default=False,
    ),
]
CacheToOpt = Annotated[
    str | None,
    typer.Option(
        "--cache-to",
        help="After a successful build, save the Go caches it used to REGISTRY/REPO:TAG "
        "(trusted branches only: a cache is compiler input).",
        envvar="PIPELINE_CACHE_TO",
        show_default=False,
    ),
]
HelperImageOpt = Annotated[
    str,
    typer.Option(
        "--helper-image",
        help="The small image that unpacks and packs the Go caches (--cache-from, --cache-to): "
        "a POSIX shell, tar, find, touch and xargs. The Go image needs only `go`.",
        envvar="PIPELINE_HELPER_IMAGE",
    ),
]
EpochOpt = Annotated[
    str | None,
    typer.Option(
        "--source-date-epoch",
        help="Timestamp of every file and date in the image "
        "[default: the last commit's time, else 0].",
        envvar="SOURCE_DATE_EPOCH",
        show_default=False,
    ),
]
QuietOpt = Annotated[
    bool,
    typer.Option(
        "--quiet",
        help="Print the summary and errors only: no progress on stderr (for scripts).",
        envvar="PIPELINE_QUIET",
    ),
]


@dataclass(frozen=True)
class BuildFlags:
    """The build commands' flags, as given (checked and resolved by
    pipeline.cli.checks.build_settings). A field's annotation is its option's declaration: a
    new flag is one field here."""

    source: SourceOpt = DEFAULT_SOURCE
    package: PackageOpt = "."
    test: TestOpt = True
    go_image: GoImageOpt = DEFAULT_GO_IMAGE
    runtime_image: RuntimeImageOpt = DEFAULT_RUNTIME_IMAGE
    name: NameOpt = DEFAULT_NAME
    platform: PlatformOpt = None
    output: OutputOpt = None
    no_output: NoOutputOpt = False
    load: LoadOpt = False
    publish: PublishOpt = None
    registry_username: UsernameOpt = None
    run: RunOpt = True
    json_path: JsonOpt = None
    user: UserOpt = None
    lock: LockOpt = None
    registry_ca: RegistryCaOpt = None
    registry_mirror: RegistryMirrorOpt = None
    push_timeout: PushTimeoutOpt = 300.0
    cache_from: CacheFromOpt = None
    cache_to: CacheToOpt = None
    helper_image: HelperImageOpt = DEFAULT_HELPER_IMAGE
    source_date_epoch: EpochOpt = None
    quiet: QuietOpt = False
    ldflags: io.LdflagsOpt = None
    build_tag: io.BuildTagsOpt = None
    go_flag: io.GoFlagsOpt = None
    build_env: io.BuildEnvOpt = None
    strip: io.StripOpt = True
    trimpath: io.TrimpathOpt = True
    app_version: io.AppVersionOpt = None
    tag: io.TagOpt = None
    cmd: io.CmdOpt = None
    env: io.EnvOpt = None
    port: io.PortOpt = None
    workdir: io.WorkdirOpt = None
    label: io.LabelOpt = None
    annotation: io.AnnotationOpt = None
    files: io.FilesOpt = None
    goprivate: mo.GoprivateOpt = None
    goproxy: mo.GoproxyOpt = None
    gonosumdb: mo.GonosumdbOpt = None
    netrc: mo.NetrcOpt = None
    module_token: mo.ModuleTokenOpt = None
    module_ca: mo.ModuleCaOpt = None
    sign_key: so.SignKeyOpt = None
    signature_format: so.SignatureFormatOpt = SignatureFormat.LEGACY
    provenance: so.ProvenanceOpt = None
    # Not a flag: read from PIPELINE_REGISTRY_PASSWORD only (a flag would show in `ps`).
    registry_password: str | None = field(default=None, repr=False, metadata={"flag": False})
    # Not a flag either: a .netrc's content, from PIPELINE_NETRC only.
    netrc_text: str | None = field(default=None, repr=False, metadata={"flag": False})
    # The signing key's password, from PIPELINE_SIGN_PASSWORD only.
    sign_password: str | None = field(default=None, repr=False, metadata={"flag": False})


def flag_parameters(cls: type[Any], *extra: inspect.Parameter) -> inspect.Signature:
    """A command signature with one keyword parameter per flag field of the dataclass `cls`
    (its annotation the option's declaration, its default the field's), then `extra`."""
    hints = get_type_hints(cls, include_extras=True)
    params = [
        inspect.Parameter(
            f.name, inspect.Parameter.KEYWORD_ONLY, default=f.default, annotation=hints[f.name]
        )
        for f in fields(cls)
        if f.metadata.get("flag", True) and f.default is not MISSING
    ]
    return inspect.Signature([*params, *extra])


def option(name: str, default: object, annotation: object) -> inspect.Parameter:
    """One more keyword parameter for a command signature."""
    return inspect.Parameter(
        name, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=annotation
    )
