"""--ldflags templates: `{{.Field}}` filled in from git, the settings and the environment
variables the template names, before any engine work. The fields:

    {{.Version}}      --app-version, else `git describe --tags --always`
    {{.Tag}}          `git describe --tags --always`
    {{.Commit}}       the commit's full hash
    {{.ShortCommit}}  its first 12 hex digits
    {{.Date}}         SOURCE_DATE_EPOCH (else the commit's time) as RFC 3339, UTC
    {{.Epoch}}        the same, in seconds
    {{.Name}}         the image's name
    {{.Env.NAME}}     the environment variable NAME (unset is an error, not "")

A field that is not one of these, or whose value is unknown (no git commit), is one line
saying so: a binary never ships with an empty version."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from pipeline.errors import UsageError
from pipeline.provenance import Provenance

_FIELD = re.compile(r"\{\{\s*(.*?)\s*\}\}")
_NAMED = re.compile(r"^\.(\w+)(?:\.(\w+))?$")
FIELDS = ("Version", "Tag", "Commit", "ShortCommit", "Date", "Epoch", "Name", "Env.NAME")
SHORT = 12


@dataclass(frozen=True)
class Facts:
    """What the fields are filled from."""

    provenance: Provenance
    name: str
    version: str | None  # --app-version
    environ: Mapping[str, str]


def _value(field: str, facts: Facts, option: str) -> str:
    named = _NAMED.match(field)
    head, tail = (named[1], named[2]) if named else ("", None)
    provenance = facts.provenance
    if head == "Env" and tail is not None:
        if tail not in facts.environ:
            raise UsageError(f"{option}: {{{{{field}}}}} names ${tail}, which is not set")
        return facts.environ[tail]
    no_git = f"{option}: {{{{{field}}}}} needs a git commit, and --source has none"
    known: dict[str, str | None] = {
        "Version": facts.version or provenance.version,
        "Tag": provenance.version,
        "Commit": provenance.revision,
        "ShortCommit": provenance.revision[:SHORT] if provenance.revision else None,
        "Date": provenance.created,
        "Epoch": str(provenance.epoch),
        "Name": facts.name,
    }
    if tail is not None or head not in known:
        raise UsageError(
            f"{option}: {{{{{field}}}}} is not a field; use "
            + ", ".join(f"{{{{.{f}}}}}" for f in FIELDS)
        )
    value = known[head]
    if value is None:
        raise UsageError(no_git)
    return value


def fill(template: str, facts: Facts, *, option: str = "--ldflags") -> str:
    """The template with each field's value; UsageError for an unknown field, an unknown
    value or a brace left unclosed."""
    rest = _FIELD.sub("", template)
    if "{{" in rest or "}}" in rest:
        raise UsageError(f"{option}: a {{{{ or }}}} without its other half in {template!r}")
    return _FIELD.sub(lambda m: _value(m[1], facts, option), template)
