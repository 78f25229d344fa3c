"""The build flags, checked into the Go repository: `pipeline.toml` at the source's root (or
the file --config names), read with the standard library's tomllib.

Its keys are the build commands' flags, as written on the command line without the dashes:

    go-image = "golang:1.26-alpine"
    runtime-image = "gcr.io/distroless/static-debian12"
    platforms = ["linux/amd64", "linux/arm64"]
    ldflags = "-X main.version={{.Version}}"
    ports = [8080]
    push-timeout = 120
    test = false

    [env]
    LOG_FORMAT = "json"

A repeatable flag takes a list, under its name or its plural (`platform` or `platforms`); a
KEY=VALUE one (build-env, env, label, annotation) a table too. A flag on the command line wins,
then its PIPELINE_* variable, then the file, then the default. A path in the file is relative
to the file's directory. Not in the file: `source` (the file is found in it) and the registry
password (a secret never goes into a file: it is PIPELINE_REGISTRY_PASSWORD). An unknown key, a
value of the wrong type or a file that is not TOML is one line naming the file, the line and
the key, before any engine work (exit 2)."""

from __future__ import annotations

import functools
import re
import tomllib
import types
import typing
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from pipeline.cli.options import BuildFlags
from pipeline.errors import UsageError

FILE_NAME = "pipeline.toml"
_NOT_IN_FILE = {
    "source": "the file is read from --source; give --source on the command line",
    "registry-password": "a password never goes into a file: set PIPELINE_REGISTRY_PASSWORD",
    "netrc-text": "a .netrc's content never goes into this file: give its path (netrc)",
    "sign-password": "a password never goes into a file: set PIPELINE_SIGN_PASSWORD",
}
_AT_LINE = re.compile(r"\(at line (\d+)")


def find(given: Path | None, source: Path) -> Path | None:
    """The config file: --config's (which must exist), else pipeline.toml at the source's
    root if there is one."""
    if given is not None:
        if not given.is_file():
            raise UsageError(f"--config {given}: no such file")
        return given
    default = source / FILE_NAME
    return default if default.is_file() else None


# Keys for the whole run: an [images.NAME] table cannot hold them.
_RUN_WIDE = {
    "test", "json", "quiet", "lock", "cache-from", "cache-to", "helper-image",
    "registry-username", "registry-ca", "registry-mirror", "push-timeout", "source-date-epoch",
    "sign-key", "signature-format",
}  # fmt: skip
_PAIRS = {"build_env", "env", "label", "annotation"}  # KEY=VALUE flags: a table in the file


def _key(name: str, annotation: Any) -> str:
    """The flag's name in the file, without its dashes: `go_image` → `go-image`, json_path →
    `json` (its option's first name), `test` for --test/--no-test."""
    for meta in typing.get_args(annotation)[1:]:
        # In Annotated, typer.Option's first argument (its `default`) is its first name.
        first = getattr(meta, "default", None)
        names = [first] if isinstance(first, str) else []
        for decl in [*names, *(getattr(meta, "param_decls", None) or ())]:
            if decl.startswith("--"):
                return str(decl.split("/")[0].removeprefix("--"))
    return name.replace("_", "-")


def _base(annotation: Any) -> tuple[type, bool]:
    """A field's type without Annotated and None: (str, False) for `str | None`, and
    whether it is a list of strings."""
    hint = (
        typing.get_args(annotation)[0]
        if typing.get_origin(annotation) is typing.Annotated
        else annotation
    )
    options = (
        [a for a in typing.get_args(hint) if a is not type(None)]
        if isinstance(hint, types.UnionType)
        else [hint]
    )
    (only,) = options
    if typing.get_origin(only) is list:
        return str, True
    return only, False


def _line(text: str, key: str, at: int = 0) -> int:
    """The line that sets `key`, or opens its table (1 if no line does: an inline table's)."""
    pattern = re.compile(
        rf"^[ \t]*(?:{re.escape(key)}[ \t]*=|\[[ \t]*{re.escape(key)}[ \t]*[.\]])", re.M
    )
    found = pattern.search(text, at)
    return text.count("\n", 0, found.start()) + 1 if found else 1


def _checked(value: Any, kind: type, many: bool, where: str, *, pairs: bool = False) -> Any:
    """The value as the flag's field holds it, or one line saying what was expected."""
    if pairs and isinstance(value, dict):
        if not all(isinstance(v, str | int | float | bool) for v in value.values()):
            raise UsageError(f'{where}: give a table of strings, e.g. {{ KEY = "value" }}')
        return [f"{k}={str(v).lower() if isinstance(v, bool) else v}" for k, v in value.items()]
    if many:
        if not isinstance(value, list) or not all(
            isinstance(v, str | int) and not isinstance(v, bool) for v in value
        ):
            raise UsageError(f'{where}: give a list of strings, e.g. ["linux/amd64"]')
        return [str(v) for v in value]
    if kind is bool:
        if not isinstance(value, bool):
            raise UsageError(f"{where}: give true or false, not {value!r}")
        return value
    if kind is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise UsageError(f"{where}: give a number, not {value!r}")
        return float(value)
    if kind is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise UsageError(f"{where}: give a whole number, not {value!r}")
        return value
    if not isinstance(value, str):
        raise UsageError(f"{where}: give a string, not {value!r}")
    return value


@dataclass(frozen=True)
class Loaded:
    """A config file's values by BuildFlags field name: those for every image, and each
    [images.NAME] table's, in the file's order."""

    path: Path
    shared: dict[str, Any]
    images: dict[str, dict[str, Any]] = field(default_factory=dict)


@functools.cache
def _names() -> tuple[dict[str, str], dict[str, Any]]:
    """Each key the file may hold → its BuildFlags field (a repeatable flag's plural too), and
    the fields' annotations."""
    hints = typing.get_type_hints(BuildFlags, include_extras=True)
    flags = {
        _key(f.name, hints[f.name]): f.name
        for f in fields(BuildFlags)
        if f.metadata.get("flag", True)
    }
    plurals = {
        f"{key}s": name
        for key, name in flags.items()
        if _base(hints[name])[1] and not key.endswith(("env", "cmd"))  # no "envs", "cmds"
    }
    return {**flags, **plurals}, hints


def _values(
    table: Mapping[str, Any], path: Path, text: str, at: int, image: str | None
) -> dict[str, Any]:
    """One table's values (the top level's, or an image's found from offset `at` of `text`),
    checked."""
    flags, hints = _names()
    values: dict[str, Any] = {}
    for key, value in table.items():
        shown = key if image is None else f"images.{image}.{key}"
        where = f"{path}:{_line(text, key, at)}: {shown}"
        if key in _NOT_IN_FILE:
            raise UsageError(f"{where}: not read from the file: {_NOT_IN_FILE[key]}")
        if key not in flags:
            raise UsageError(f"{where}: unknown key: the keys are the build flags, e.g. go-image")
        name = flags[key]
        if image is not None and _key(name, hints[name]) in _RUN_WIDE:
            raise UsageError(
                f"{where}: set for the whole run, not per image: put it above [images]"
            )
        if name in values:
            raise UsageError(f"{where}: given twice (as {_key(name, hints[name])} and its plural)")
        kind, many = _base(hints[name])
        checked = _checked(value, kind, many, where, pairs=name in _PAIRS)
        values[name] = path.parent / checked if kind is Path else checked
    return values


def load(path: Path) -> Loaded:
    """The file's values, checked; paths made relative to the file's directory."""
    text = path.read_text()
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        at = _AT_LINE.search(str(err))
        where = f"{path}:{at.group(1)}" if at else str(path)
        raise UsageError(f"{where}: not TOML: {str(err).split(' (at line')[0]}") from None
    tables = document.pop("images", None)
    loaded = Loaded(path, _values(document, path, text, 0, None))
    if tables is None:
        return loaded
    where = f"{path}:{_line(text, 'images')}: images"
    if not isinstance(tables, dict) or not all(isinstance(t, dict) for t in tables.values()):
        raise UsageError(f"{where}: give one [images.NAME] table per image")
    if not tables:
        raise UsageError(f"{where}: names no images: add an [images.NAME] table per image")
    for image, table in tables.items():
        header = re.search(rf"^[ \t]*\[[ \t]*images\.{re.escape(image)}[ \t]*\]", text, re.M)
        loaded.images[image] = _values(table, path, text, header.end() if header else 0, image)
        loaded.images[image].setdefault("name", image)
    return loaded


def apply(flags: BuildFlags, values: Mapping[str, Any], given: Callable[[str], bool]) -> BuildFlags:
    """`flags` with the file's `values` where the flag was not `given` (on the command line or
    in its variable)."""
    return replace(flags, **{name: v for name, v in values.items() if not given(name)})


def applied(
    flags: BuildFlags,
    path: Path | None,
    source_of: Callable[[str], object],
    chosen: Sequence[str] = (),
) -> list[BuildFlags]:
    """The flags for each image the run builds: the config file's values where a flag was
    neither on the command line nor in its variable (`source_of(name)` is where the command
    line's parser took each value from: click's ParameterSource), an image's table over the
    file's top level. One image without [images] tables; with them, each --image `chosen`
    (every image if none is)."""
    found = find(path, flags.source)
    if found is None:
        if chosen:
            raise UsageError(f"--image {chosen[0]}: there is no config file to name images")
        return [flags]

    def given(name: str) -> bool:
        return getattr(source_of(name), "name", "") in ("COMMANDLINE", "ENVIRONMENT")

    loaded = load(found)
    if not loaded.images:
        if chosen:
            raise UsageError(f"--image {chosen[0]}: {found} names no images ([images.NAME])")
        return [apply(flags, loaded.shared, given)]
    for image in chosen:
        if image not in loaded.images:
            raise UsageError(f"--image {image}: {found} names {', '.join(loaded.images)}")
    return [
        apply(flags, {**loaded.shared, **loaded.images[image]}, given)
        for image in (dict.fromkeys(chosen) if chosen else loaded.images)
    ]


# What compare and verify do not do, whatever the file says: they write their own results.
NOT_COMPARED = (
    "output", "no_output", "json_path", "load", "publish", "tag", "cache_to", "registry_username",
    "sign_key", "signature_format", "provenance",
)  # fmt: skip


def one_image(
    flags: BuildFlags,
    path: Path | None,
    source_of: Callable[[str], object],
    chosen: Sequence[str],
    *,
    command: str,
) -> BuildFlags:
    """compare's and verify's flags: those of one image of the file (--image NAME, or its only
    one), the file's NOT_COMPARED values left out."""
    found = applied(flags, path, source_of, chosen)
    if len(found) > 1:
        file = find(path, flags.source)
        names = ", ".join(load(file).images) if file else ""
        raise UsageError(f"{command} builds one image: choose it with --image NAME ({names})")
    return replace(found[0], **{name: getattr(flags, name) for name in NOT_COMPARED})
