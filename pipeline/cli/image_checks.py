"""The checks of the flags that shape the binary and the image (pipeline.cli.image_options),
each one line naming the flag and what to write, and the GoBuild and ImageConfig values they
resolve into. Only the CLI asks them."""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from pipeline.cli.templates import Facts, fill
from pipeline.errors import UsageError
from pipeline.refs import ImageRef
from pipeline.settings import GoBuild, ImageConfig

if TYPE_CHECKING:  # the flags' type only
    from pipeline.cli.options import BuildFlags

_ENV_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_LABEL_KEY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/-]*$")
_BUILD_TAG = re.compile(r"^!?[A-Za-z0-9_.]+$")
_PORT = re.compile(r"^(\d{1,5})(?:/(tcp|udp))?$")
_TAG = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
# Flags with a flag of their own here, or that the recipe sets: given as --go-flag they would
# fight it.
_OWN = {
    "-o": "the output is the recipe's",
    "-ldflags": "give --ldflags",
    "-tags": "give --build-tag",
    "-trimpath": "it is on by default (--no-trimpath turns it off)",
    "-buildvcs": "the build depends on the files alone",
}


def check_pairs(
    values: Sequence[str], option: str, *, env: bool = False
) -> tuple[tuple[str, str], ...]:
    """KEY=VALUE items, in order, a later KEY replacing an earlier one."""
    pairs: dict[str, str] = {}
    for text in values:
        key, sep, value = text.partition("=")
        good = (_ENV_KEY if env else _LABEL_KEY).match(key)
        if not sep or not good:
            example = "GOAMD64=v3" if env else "team=payments"
            raise UsageError(f"{option} {text!r} is malformed: write KEY=VALUE, e.g. {example}")
        pairs[key] = value
    return tuple(pairs.items())


def check_build_tags(values: Sequence[str]) -> tuple[str, ...]:
    """`netgo,osusergo` or one tag per --build-tag: letters, digits, _ and . each."""
    tags = [t.strip() for text in values for t in text.split(",") if t.strip()]
    for tag in tags:
        if not _BUILD_TAG.match(tag):
            raise UsageError(
                f"--build-tag {tag!r}: a build tag is letters, digits, _ and ., e.g. netgo"
            )
    return tuple(dict.fromkeys(tags))


def check_go_flags(values: Sequence[str]) -> tuple[str, ...]:
    """Further `go build` flags, each one argument starting with -, none of those the recipe
    or a flag of ours sets."""
    for flag in values:
        name = "-" + flag.split("=", 1)[0].lstrip("-")  # go takes -x and --x alike
        if not flag.startswith("-"):
            raise UsageError(f"--go-flag {flag!r}: give a go build flag, e.g. -gcflags=all=-l")
        if name in _OWN:
            raise UsageError(f"--go-flag {flag!r}: not a --go-flag: {_OWN[name]}")
    return tuple(values)


def check_ports(values: Sequence[str]) -> tuple[str, ...]:
    """PORT[/tcp|/udp] → `8080/tcp`."""
    ports = []
    for text in values:
        match = _PORT.match(text.strip())
        if match is None or not 0 < int(match[1]) < 65536:
            raise UsageError(f"--port {text!r}: write PORT[/tcp|/udp], e.g. 8080 or 53/udp")
        ports.append(f"{int(match[1])}/{match[2] or 'tcp'}")
    return tuple(dict.fromkeys(ports))


def check_tags(values: Sequence[str], publish: ImageRef | None) -> tuple[str, ...]:
    """--tag: further tags of --publish's repository, each a valid tag."""
    if not values:
        return ()
    if publish is None:
        raise UsageError("--tag is only used with --publish: give the repository there")
    if publish.digest:
        raise UsageError("--tag: --publish names a digest; give REGISTRY/REPO[:TAG] to tag")
    for tag in values:
        if not _TAG.match(tag):
            raise UsageError(
                f"--tag {tag!r} is not a tag: letters, digits, _ . and -, at most 128, "
                "not starting with . or -"
            )
    return tuple(t for t in dict.fromkeys(values) if t != publish.tag)


def go_build(flags: BuildFlags, facts: Facts) -> GoBuild:
    """How `go build` is called, the ldflags' template filled in."""
    return GoBuild(
        trimpath=flags.trimpath,
        strip=flags.strip,
        ldflags=fill(flags.ldflags, facts) if flags.ldflags else "",
        tags=check_build_tags(flags.build_tag or ()),
        flags=check_go_flags(flags.go_flag or ()),
        env=check_pairs(flags.build_env or (), "--build-env", env=True),
    )


def image_config(flags: BuildFlags) -> ImageConfig:
    """What the image says beyond its binary."""
    workdir = flags.workdir
    if workdir is not None and not workdir.startswith("/"):
        raise UsageError(f"--workdir {workdir!r}: give an absolute path, e.g. /app")
    files: Path | None = flags.files
    if files is not None and not files.is_dir():
        raise UsageError(f"--files {files}: no such directory")
    return ImageConfig(
        cmd=tuple(flags.cmd or ()),
        env=check_pairs(flags.env or (), "--env", env=True),
        ports=check_ports(flags.port or ()),
        workdir=workdir,
        labels=check_pairs(flags.label or (), "--label"),
        annotations=check_pairs(flags.annotation or (), "--annotation"),
        files=files,
    )
