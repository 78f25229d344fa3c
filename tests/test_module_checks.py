"""pipeline.cli.module_checks: the private-module flags through the command line in this
process (the settings captured): the .netrc from --netrc, PIPELINE_NETRC or --module-token's
variables, held as a secret that no repr shows; each bad value one line, exit 2."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

from pipeline.cli import commands
from pipeline.settings import Modules, Settings
from tests.conftest import ROOT

runner = CliRunner()
SOURCE = str(ROOT / "go-src")


def _run(*args: str, env: dict[str, str] | None = None) -> tuple[int, str]:
    result = runner.invoke(commands.app, ["multistage", "--source", SOURCE, *args], env=env)
    return result.exit_code, result.stderr


def test_where_the_modules_are(captured: list[Settings], tmp_path: Path) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_text("-----BEGIN CERTIFICATE-----\n")
    code, said = _run(
        "--goprivate", "github.com/acme,*.corp.dev", "--goproxy", "https://athens.acme.dev",
        "--gonosumdb", "github.com/acme", "--module-ca", str(ca),
    )  # fmt: skip
    assert code == 0, said
    (got,) = captured
    assert got.modules == Modules("github.com/acme,*.corp.dev", "https://athens.acme.dev",
                                  "github.com/acme", None, ca)  # fmt: skip
    assert got.modules.private_hosts == ("github.com",)  # a glob names no one host


def test_the_netrc_gathers_the_file_and_each_token(
    captured: list[Settings], tmp_path: Path
) -> None:
    netrc = tmp_path / "netrc"
    netrc.write_text("machine git.corp.dev login ci password s3cret-file\n")
    code, said = _run(
        "--netrc", str(netrc), "--module-token", "github.com=GH_TOKEN",
        "--module-token", "gitlab-ci-token@gitlab.com=CI_JOB_TOKEN",
        env={"GH_TOKEN": "s3cret-gh", "CI_JOB_TOKEN": "s3cret-ci"},
    )  # fmt: skip
    assert code == 0, said
    (got,) = captured
    assert got.modules.netrc is not None
    assert got.modules.netrc.value == (
        "machine git.corp.dev login ci password s3cret-file\n"
        "machine github.com login oauth2 password s3cret-gh\n"
        "machine gitlab.com login gitlab-ci-token password s3cret-ci\n"
    )
    assert "s3cret" not in repr(got)
    assert "s3cret" not in said


def test_the_netrc_content_from_its_variable_leaves_the_environment(
    captured: list[Settings],
) -> None:
    os.environ["PIPELINE_NETRC"] = "machine h login u password s3cret\n"
    try:
        code, said = _run()
    finally:
        left = os.environ.pop("PIPELINE_NETRC", None)
    assert code == 0, said
    assert left is None  # read once, then gone: no child inherits it
    (got,) = captured
    assert got.modules.netrc is not None
    assert got.modules.netrc.value == "machine h login u password s3cret\n"


@pytest.mark.parametrize(
    ("args", "env", "message"),
    [
        (["--module-token", "github.com"], {}, "--module-token 'github.com' is malformed"),
        (["--module-token", "github.com=NOT_SET_ANYWHERE"], {}, "$NOT_SET_ANYWHERE is not set"),
        (["--module-token", "h=T"], {"T": "a b"}, "$T holds whitespace"),
        (["--netrc", "/no/such/netrc"], {}, "--netrc /no/such/netrc: No such file"),
        (["--module-ca", "/no/such/ca.pem"], {}, "--module-ca /no/such/ca.pem: no such file"),
        (["--netrc", SOURCE + "/go.mod"], {"PIPELINE_NETRC": "x"}, "give one"),
    ],
)
def test_a_bad_value_is_one_line(
    captured: list[Settings], args: list[str], env: dict[str, str], message: str
) -> None:
    code, said = _run(*args, env=env)
    os.environ.pop("PIPELINE_NETRC", None)
    assert code == 2, said
    assert message in said, said
    assert len(said.strip().splitlines()) == 1, said
    assert captured == []
