"""pipeline.cli.image_checks: the flags that shape the binary and the image, through the
command line in this process (the settings captured), each bad value one line, exit 2."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from typer.testing import CliRunner

from pipeline.cli import commands
from pipeline.settings import GoBuild, ImageConfig, Settings
from tests.conftest import ROOT

runner = CliRunner()
SOURCE = str(ROOT / "go-src")


def _run(*args: str) -> tuple[int, str]:
    result = runner.invoke(commands.app, ["multistage", "--source", SOURCE, *args])
    return result.exit_code, result.stderr


def test_the_defaults_are_the_write_ups(captured: list[Settings]) -> None:
    code, said = _run()
    assert code == 0, said
    (got,) = captured
    assert (got.go_build, got.image, got.tags) == (GoBuild(), ImageConfig(), ())


def test_every_flag_reaches_the_settings(captured: list[Settings], tmp_path: Path) -> None:
    code, said = _run(
        "--ldflags", "-X main.name={{.Name}}", "--build-tag", "netgo,osusergo",
        "--build-tag", "netgo", "--go-flag", "-gcflags=all=-l", "--build-env", "GOAMD64=v3",
        "--no-strip", "--no-trimpath", "--cmd", "serve", "--cmd", "--verbose",
        "--env", "A=1", "--env", "A=2", "--port", "8080", "--port", "53/udp",
        "--workdir", "/srv", "--label", "team=payments", "--annotation", "a.b/c=d",
        "--files", str(tmp_path), "--publish", "127.0.0.1:5000/x/api:one",
        "--tag", "two", "--tag", "one",
    )  # fmt: skip
    assert code == 0, said
    (got,) = captured
    assert got.go_build == GoBuild(
        trimpath=False,
        strip=False,
        ldflags="-X main.name=helloworld",
        tags=("netgo", "osusergo"),
        flags=("-gcflags=all=-l",),
        env=(("GOAMD64", "v3"),),
    )
    assert got.image == ImageConfig(
        cmd=("serve", "--verbose"),
        env=(("A", "2"),),  # the last wins
        ports=("8080/tcp", "53/udp"),
        workdir="/srv",
        labels=(("team", "payments"),),
        annotations=(("a.b/c", "d"),),
        files=tmp_path,
    )
    assert got.publish is not None
    assert got.publish.tag == "one"
    assert got.tags == ("two",)  # --publish's own tag once


def test_without_a_tag_in_publish_the_first_tag_is_pushed(captured: list[Settings]) -> None:
    code, said = _run("--publish", "127.0.0.1:5000/x/api", "--tag", "sha", "--tag", "main")
    assert code == 0, said
    (got,) = captured
    assert got.publish is not None
    assert str(got.publish) == "127.0.0.1:5000/x/api:sha"
    assert got.tags == ("main",)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--build-env", "GOAMD64"], "--build-env 'GOAMD64' is malformed: write KEY=VALUE"),
        (["--env", "1A=x"], "--env '1A=x' is malformed"),
        (["--label", "=x"], "--label '=x' is malformed"),
        (["--build-tag", "net go"], "--build-tag 'net go': a build tag is letters"),
        (["--go-flag", "gcflags"], "--go-flag 'gcflags': give a go build flag"),
        (["--go-flag", "-o=/tmp/x"], "not a --go-flag: the output is the recipe's"),
        (["--go-flag", "--ldflags=-s"], "not a --go-flag: give --ldflags"),
        (["--port", "http"], "--port 'http': write PORT[/tcp|/udp]"),
        (["--port", "70000"], "--port '70000'"),
        (["--workdir", "srv"], "--workdir 'srv': give an absolute path"),
        (["--files", "/no/such/dir"], "--files /no/such/dir: no such directory"),
        (["--tag", "v1"], "--tag is only used with --publish"),
        (["--publish", "r.io/x/a@sha256:" + "0" * 64, "--tag", "v1"], "--publish names a digest"),
        (["--publish", "r.io/x/a", "--tag", ".v1"], "--tag '.v1' is not a tag"),
        (["--ldflags", "{{.Nope}}"], "--ldflags: {{.Nope}} is not a field"),
    ],
)
def test_a_bad_value_is_one_line(captured: list[Settings], args: list[str], message: str) -> None:
    code, said = _run(*args)
    assert code == 2, said
    assert message in said, said
    assert len(said.strip().splitlines()) == 1, said
    assert captured == []


def test_the_tag_field_is_gits_whatever_the_app_version(captured: list[Settings]) -> None:
    """--app-version is {{.Version}}, the label's and the SBOM's; {{.Tag}} stays `git
    describe`'s."""
    described = subprocess.run(
        ["git", "-C", SOURCE, "describe", "--tags", "--always"],
        capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    code, said = _run("--app-version", "v9.9.9", "--ldflags", "{{.Version}} {{.Tag}}")
    assert code == 0, said
    (got,) = captured
    assert got.go_build.ldflags == f"v9.9.9 {described}"
    assert got.provenance is not None
    assert got.provenance.version == "v9.9.9"
