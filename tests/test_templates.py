"""pipeline.cli.templates: --ldflags fields filled in from git, the settings and the variables
named; an unknown field, an unknown value or a lone brace refused in one line."""

from __future__ import annotations

import pytest

from pipeline.cli.templates import Facts, fill
from pipeline.errors import UsageError
from pipeline.provenance import Provenance

COMMIT = "0123456789abcdef0123456789abcdef01234567"
GIT = Provenance(epoch=1700000000, revision=COMMIT, version="v1.2.0-3-g0123456")
NO_GIT = Provenance(epoch=0)


def _facts(provenance: Provenance = GIT, version: str | None = None) -> Facts:
    return Facts(provenance, "api", version, {"BUILD_ID": "42"})


@pytest.mark.parametrize(
    ("template", "want"),
    [
        ("-X main.version={{.Version}}", "-X main.version=v1.2.0-3-g0123456"),
        ("{{.Tag}}", "v1.2.0-3-g0123456"),
        ("{{.Commit}}", COMMIT),
        ("{{ .ShortCommit }}", "0123456789ab"),
        ("{{.Date}}", "2023-11-14T22:13:20Z"),
        ("{{.Epoch}}", "1700000000"),
        ("{{.Name}}", "api"),
        ("-X main.build={{.Env.BUILD_ID}}", "-X main.build=42"),
        ("no field at all", "no field at all"),
    ],
)
def test_each_field(template: str, want: str) -> None:
    got = fill(template, _facts())
    assert got == want, f"fill({template!r}) = {got!r}, want {want!r}"


def test_the_app_version_wins_over_git() -> None:
    assert fill("{{.Version}} {{.Tag}}", _facts(version="v2")) == "v2 v1.2.0-3-g0123456"


@pytest.mark.parametrize(
    ("template", "provenance", "message"),
    [
        ("{{.Versoin}}", GIT, "{{.Versoin}} is not a field; use {{.Version}}"),
        ("{{.Env}}", GIT, "{{.Env}} is not a field"),
        ("{{.Commit.Short}}", GIT, "{{.Commit.Short}} is not a field"),
        ("{{.Env.NOT_SET_HERE}}", GIT, "names $NOT_SET_HERE, which is not set"),
        ("{{.Commit}}", NO_GIT, "{{.Commit}} needs a git commit, and --source has none"),
        ("{{.Version}}", NO_GIT, "{{.Version}} needs a git commit"),
        ("-X main.v={{.Version}", GIT, "a {{ or }} without its other half"),
    ],
)
def test_what_cannot_be_filled_is_one_line(
    template: str, provenance: Provenance, message: str
) -> None:
    with pytest.raises(UsageError) as raised:
        fill(template, _facts(provenance))
    said = str(raised.value)
    assert said.startswith("--ldflags: "), said
    assert message in said, said
    assert "\n" not in said


def test_the_app_version_needs_no_git() -> None:
    assert fill("{{.Version}} {{.Date}}", _facts(NO_GIT, "v3")) == "v3 1970-01-01T00:00:00Z"
