"""The checks of the build commands' flag values, each one line naming the flag and what to
write (names, packages, logins, caches, sizes, budgets, the chart's path, mirrors, the push
timeout, the user), the defaults derived from them, and build_settings, which resolves the
build flags into one Settings value. Only the CLI asks them: Settings holds what they let
through. No I/O but git's, for a reproducible variant's provenance."""

from __future__ import annotations

import os
import re
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from pipeline.cli import image_checks, module_checks, sign_checks
from pipeline.cli.templates import Facts, fill
from pipeline.errors import PASSWORD_ENV, UsageError
from pipeline.provenance import read_provenance
from pipeline.refs import (
    DOCKER_HUB,
    ImageRef,
    SettingsError,
    is_host,
    is_name_component,
    parse_image_ref,
    parse_platform,
)
from pipeline.settings import BUILD_DIR, SCRATCH, Secret, Settings, Variant

if TYPE_CHECKING:  # the flags' type only: chart and compare import these checks, not Typer
    from pipeline.cli.options import BuildFlags


def check_name(name: str) -> str:
    """The image name (`helloworld`): one lowercase repository component."""
    if not is_name_component(name):
        raise SettingsError(
            f"--name {name!r} is not a valid image name: use lowercase letters, digits,"
            " and . _ - between them, e.g. helloworld"
        )
    return name


def default_output(name: str, variant: Variant) -> Path:
    """build/<name>-<variant>.tar"""
    return BUILD_DIR / f"{name}-{variant}.tar"


def check_package(package: str) -> str:
    """`.` or `./cmd/server`: a relative package path, as `go build` takes it."""
    if not (package == "." or package.startswith("./")) or ".." in package.split("/"):
        raise SettingsError(
            f"--package {package!r}: give the main package as a path inside --source, "
            "e.g. . or ./cmd/server"
        )
    return package


def check_registry_auth(
    publish: ImageRef | None,
    username: str | None,
    password: Secret | None,
    *caches: ImageRef | None,
) -> None:
    """Credentials only make sense together and with a registry to use them on (--publish,
    --cache-from, --cache-to). (A password alone in the environment, with neither, is not an
    error: CI often exports it for every job.)"""
    remote = publish is not None or any(c is not None for c in caches)
    if username is None and not remote:
        return
    if (username is None) != (password is None):
        missing = PASSWORD_ENV if password is None else "--registry-username"
        raise SettingsError(f"registry credentials are incomplete: set {missing} as well")
    if username is not None and not remote:
        raise SettingsError(
            "--registry-username is only used with --publish, --cache-from or --cache-to"
        )


def check_cache_ref(text: str, *, option: str) -> ImageRef:
    """--cache-from/--cache-to: a repository and a tag; each platform set and Go image gets a
    tag of its own beside it (main → main-linux-amd64-<go>), so a digest cannot name it."""
    ref = parse_image_ref(text, option=option)
    if ref.digest:
        raise SettingsError(
            f"{option} {text!r}: give REGISTRY/REPOSITORY[:TAG], not a digest: the cache is"
            " written under tags derived from it"
        )
    if len(ref.push_tag) > 80:
        raise SettingsError(f"{option} {text!r}: keep the tag under 80 characters")
    return ref


_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kKMG]i?B|B)?\s*$")
_UNITS = {
    "B": 1, "kB": 1000, "KB": 1000, "MB": 1000**2, "GB": 1000**3,
    "KiB": 1024, "kiB": 1024, "MiB": 1024**2, "GiB": 1024**3,
}  # fmt: skip


def parse_size(text: str) -> int:
    """`10MB` (powers of 1000, as docker prints), `9.5MiB`, `500kB` or bytes → bytes."""
    match = _SIZE.match(text)
    if match is None or (match[2] or "B") not in _UNITS:
        raise SettingsError(f"size {text!r} is not a size: write e.g. 10MB, 9.5MiB or 500kB")
    return int(float(match[1]) * _UNITS[match[2] or "B"])


def parse_budget(text: str) -> tuple[str, int]:
    """`multistage=10MB` → ("multistage", 10_000_000)."""
    key, sep, size = text.partition("=")
    if not sep or not is_name_component(key.strip()):
        raise SettingsError(
            f"--max-size {text!r} is malformed: write IMAGE=SIZE, e.g. multistage=10MB"
        )
    try:
        return key.strip(), parse_size(size)
    except SettingsError:
        raise SettingsError(
            f"--max-size {text!r}: {size.strip()!r} is not a size; write e.g. multistage=10MB"
        ) from None


def image_key(variant: Variant, runtime_image: str) -> str:
    """The key of a multistage image on an extra base: multistage-scratch, multistage-static."""
    if runtime_image == SCRATCH:
        return f"{variant}-scratch"
    last = runtime_image.split("@")[0].rsplit("/", 1)[-1].split(":")[0]
    return f"{variant}-{last}"


CHART_FORMATS = {".svg": "svg", ".png": "png"}


def check_chart_path(path: Path) -> str:
    """The chart's format, from its suffix (.svg or .png)."""
    if path.suffix.lower() not in CHART_FORMATS:
        raise SettingsError(f"--chart {path}: give a .svg or .png path")
    return CHART_FORMATS[path.suffix.lower()]


_USER = re.compile(r"^(?:\d+|[a-z_][a-z0-9_-]*)(?::(?:\d+|[a-z_][a-z0-9_-]*))?$")


def parse_mirror(text: str) -> tuple[str, str]:
    """`docker.io=127.0.0.1:5000` → ("docker.io", "127.0.0.1:5000"): a registry and the host
    (and port) of the mirror the engine pulls it through."""
    registry, sep, mirror = (part.strip() for part in text.partition("="))
    if not sep or not is_host(registry) or not is_host(mirror):
        raise SettingsError(
            f"--registry-mirror {text!r} is malformed: write REGISTRY=MIRROR, e.g. "
            "docker.io=mirror.example.com:5000"
        )
    return ("docker.io" if registry in DOCKER_HUB else registry), mirror


def check_push_timeout(seconds: float) -> float:
    """--push-timeout: a positive number of seconds."""
    if not seconds > 0:
        raise SettingsError(f"--push-timeout {seconds:g}: give a positive number of seconds")
    return seconds


def check_user(user: str) -> str:
    """`65532:65532`, `nonroot` or `1000`: as the OCI config's User takes it."""
    if not _USER.match(user):
        raise SettingsError(f"--user {user!r}: write UID[:GID] or a user name, e.g. 65532:65532")
    return user


def build_settings(variant: Variant, flags: BuildFlags) -> Settings:
    """Check every flag and resolve them into one Settings value (UsageError if wrong).
    builder and multistage images are reproducible: their epoch and labels come from git."""
    parse_image_ref(flags.go_image, option="--go-image")
    if flags.runtime_image != SCRATCH:
        parse_image_ref(flags.runtime_image, option="--runtime-image")
    parse_image_ref(flags.helper_image, option="--helper-image")
    # git's facts, for the templates (--publish, --tag, --ldflags) and (builder, multistage)
    # the labels and SBOM.
    git = read_provenance(flags.source, flags.source_date_epoch)
    facts = Facts(git, flags.name, flags.app_version, os.environ)  # {{.Tag}} stays git's
    found = replace(git, version=flags.app_version) if flags.app_version else git
    publish = (
        parse_image_ref(fill(flags.publish, facts, option="--publish"), option="--publish")
        if flags.publish
        else None
    )
    cache_from = (
        check_cache_ref(flags.cache_from, option="--cache-from") if flags.cache_from else None
    )
    cache_to = check_cache_ref(flags.cache_to, option="--cache-to") if flags.cache_to else None
    tags = image_checks.check_tags(
        [fill(t, facts, option="--tag") for t in flags.tag or ()], publish
    )
    if publish is not None and not publish.tag and tags:  # the first --tag, not "latest"
        publish = parse_image_ref(f"{publish.text}:{tags[0]}", option="--publish")
        tags = tags[1:]
    password = Secret(flags.registry_password) if flags.registry_password else None
    check_registry_auth(publish, flags.registry_username, password, cache_from, cache_to)
    if publish is None and cache_from is None and cache_to is None:
        password = None  # not needed, not kept
    name = check_name(flags.name)
    output = Path(fill(str(flags.output), facts, option="--output")) if flags.output else None
    if flags.no_output and flags.output is not None:
        raise UsageError("--output and --no-output contradict each other: give one")
    statement = flags.provenance and Path(fill(str(flags.provenance), facts, option="--provenance"))
    return Settings(
        variant=variant,
        source=flags.source,
        package=check_package(flags.package),
        test=flags.test,
        go_image=flags.go_image,
        runtime_image=flags.runtime_image,
        name=name,
        platforms=tuple(dict.fromkeys(parse_platform(p) for p in flags.platform or ())),
        output=None if flags.no_output else (output or default_output(name, variant)),
        load=flags.load,
        publish=publish,
        registry_username=flags.registry_username,
        registry_password=password,
        run=flags.run,
        json_path=flags.json_path,
        provenance=None if variant is Variant.NAIVE else found,
        user=check_user(flags.user) if flags.user else None,
        lock=flags.lock,
        registry_ca=flags.registry_ca,
        registry_mirrors=tuple(dict(parse_mirror(m) for m in flags.registry_mirror or ()).items()),
        push_timeout=check_push_timeout(flags.push_timeout),
        cache_from=cache_from,
        cache_to=cache_to,
        helper_image=flags.helper_image,
        quiet=flags.quiet,
        tags=tags,
        go_build=image_checks.go_build(flags, facts),
        image=image_checks.image_config(flags),
        modules=module_checks.modules(flags, os.environ),
        sign_key=sign_checks.sign_key(flags.sign_key, flags.sign_password, publish),
        provenance_file=statement or None,
        signature_format=flags.signature_format,
    )


def _destinations(job: Settings) -> tuple[tuple[str, object], ...]:
    """Where an image goes that no other image of the run may go: its tarball, its tag."""
    places: list[tuple[str, object]] = []
    if job.output is not None:
        places.append(("--output", job.output.resolve()))
    if job.publish is not None:
        places.append(("--publish", f"{job.publish.qualified}:{job.publish.push_tag}"))
    if job.provenance_file is not None:
        places.append(("--provenance", job.provenance_file.resolve()))
    return tuple(places)


def apart(jobs: tuple[Settings, ...], *, watch: bool = False) -> tuple[Settings, ...]:
    """The images of one run, if no two write the same tarball or push to the same tag (and
    one only, with --watch)."""
    if watch and len(jobs) > 1:
        raise UsageError("--watch builds one image: choose it with --image NAME")
    seen: dict[tuple[str, object], str] = {}
    for job in jobs:
        for option, where in _destinations(job):
            if (option, where) in seen:
                raise UsageError(
                    f"{option}: {seen[option, where]} and {job.name} would both go to {where}: "
                    "give each image its own (in its [images.NAME] table; {{.Name}} is the "
                    "image's name)"
                )
            seen[option, where] = job.name
    return jobs
