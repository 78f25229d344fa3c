"""pipeline.cli.sign_checks: --sign-key and --provenance through the command line in this
process (the settings captured): the key opened once with PIPELINE_SIGN_PASSWORD, which then
leaves the environment; each bad value one line and exit 2, before any engine work."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from typer.testing import CliRunner

from pipeline.cli import commands
from pipeline.settings import Settings
from tests.conftest import ROOT

runner = CliRunner()
SOURCE = str(ROOT / "go-src")
PUBLISH = ("--publish", "127.0.0.1:5000/team/app:1")


def _run(*args: str, env: dict[str, str] | None = None) -> tuple[int, str]:
    result = runner.invoke(commands.app, ["multistage", "--source", SOURCE, *args], env=env)
    return result.exit_code, result.stderr


@pytest.fixture
def key_file(tmp_path: Path) -> Path:
    key = ec.generate_private_key(ec.SECP256R1())
    path = tmp_path / "release.pem"
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"s3cret-sign"),
        )
    )
    return path


def test_the_key_opens_with_its_password_which_then_leaves_the_environment(
    captured: list[Settings], key_file: Path
) -> None:
    code, said = _run(
        *PUBLISH, "--sign-key", str(key_file), env={"PIPELINE_SIGN_PASSWORD": "s3cret-sign"}
    )
    assert code == 0, said
    (got,) = captured
    assert got.sign_key is not None
    assert "PIPELINE_SIGN_PASSWORD" not in os.environ
    assert "s3cret" not in repr(got)


def test_the_key_and_the_provenance_come_from_the_environment_too(
    captured: list[Settings], key_file: Path, tmp_path: Path
) -> None:
    env = {
        "PIPELINE_SIGN_KEY": str(key_file),
        "PIPELINE_SIGN_PASSWORD": "s3cret-sign",
        "PIPELINE_PROVENANCE": str(tmp_path / "{{.Name}}.intoto.json"),
    }
    code, said = _run(*PUBLISH, env=env)
    assert code == 0, said
    (got,) = captured
    assert got.sign_key is not None
    assert got.provenance_file == tmp_path / "helloworld.intoto.json"


def test_provenance_alone_needs_no_key_and_no_publish(
    captured: list[Settings], tmp_path: Path
) -> None:
    code, said = _run("--provenance", str(tmp_path / "p.json"))
    assert code == 0, said
    assert captured[0].provenance_file == tmp_path / "p.json"
    assert captured[0].sign_key is None


@pytest.mark.parametrize(
    ("args", "env", "said"),
    [
        ((), {}, "signs what --publish pushes: give --publish too"),
        (PUBLISH, {"PIPELINE_SIGN_PASSWORD": "wrong"}, "wrong password (check "),
        (PUBLISH, {}, "the key is encrypted: give its password in $PIPELINE_SIGN_PASSWORD"),
    ],
)
def test_a_key_that_cannot_sign_is_one_line_and_exit_2(
    captured: list[Settings],
    key_file: Path,
    args: tuple[str, ...],
    env: dict[str, str],
    said: str,
) -> None:
    code, stderr = _run(*args, "--sign-key", str(key_file), env=env)
    assert code == 2
    assert stderr.count("\n") == 1
    assert stderr.startswith(f"error: --sign-key {key_file}")
    assert said in stderr
    assert not captured


def test_a_sign_key_that_is_not_a_file_says_kms_is_not_supported(
    captured: list[Settings],
) -> None:
    code, said = _run(*PUBLISH, "--sign-key", "gcpkms://projects/p/keys/k")
    assert code == 2
    assert "KMS URIs and keyless signing are not supported" in said
    assert not captured


def test_the_config_file_holds_the_key_for_the_run_never_its_password(
    captured: list[Settings], key_file: Path, tmp_path: Path
) -> None:
    config = tmp_path / "pipeline.toml"
    config.write_text('sign-password = "hunter2"\n')
    code, said = _run(*PUBLISH, "--config", str(config))
    assert code == 2
    assert "set PIPELINE_SIGN_PASSWORD" in said
    config.write_text(f'[images.api]\nsign-key = "{key_file}"\n')
    code, said = _run(*PUBLISH, "--config", str(config))
    assert code == 2
    assert "sign-key" in said
    config.write_text(f'sign-key = "{key_file}"\n')
    code, said = _run(
        *PUBLISH, "--config", str(config), env={"PIPELINE_SIGN_PASSWORD": "s3cret-sign"}
    )
    assert code == 0, said
    assert captured[0].sign_key is not None


def test_two_images_may_not_write_one_provenance_file(
    captured: list[Settings], tmp_path: Path
) -> None:
    config = tmp_path / "pipeline.toml"
    config.write_text(
        f'provenance = "{tmp_path}/p.json"\nno-output = true\n'
        '[images.api]\npackage = "."\n[images.worker]\npackage = "."\n'
    )
    code, said = _run("--config", str(config))
    assert code == 2
    assert "--provenance: api and worker would both go to" in said
    assert not captured
