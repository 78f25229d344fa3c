"""pipeline.cli.commands: flags and PIPELINE_* variables resolve into one Settings value; bad values
exit 2 with one line; --help answers without importing dagger. The runner is replaced here
only to see the Settings it would get: this tests parsing, not the engine."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from pipeline.cli import commands
from pipeline.refs import Platform
from pipeline.settings import Settings, Variant

ROOT = Path(__file__).resolve().parent.parent
runner = CliRunner()


def test_help_lists_the_three_variants() -> None:
    result = runner.invoke(commands.app, ["--help"])
    assert result.exit_code == 0
    for variant in Variant:
        assert variant.value in result.output


def test_every_option_has_help_and_an_env_var() -> None:
    result = runner.invoke(commands.app, ["multistage", "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    for env in (
        "PIPELINE_SOURCE",
        "PIPELINE_PACKAGE",
        "PIPELINE_TEST",
        "PIPELINE_GO_IMAGE",
        "PIPELINE_RUNTIME_IMAGE",
        "PIPELINE_NAME",
        "PIPELINE_PLATFORM",
        "PIPELINE_OUTPUT",
        "PIPELINE_LOAD",
        "PIPELINE_PUBLISH",
        "PIPELINE_REGISTRY_USERNAME",
        "PIPELINE_RUN",
        "PIPELINE_JSON",
        "PIPELINE_REGISTRY_PASSWORD",
    ):
        assert env in result.output, f"{env} missing from --help"


def test_defaults(captured: list[Settings]) -> None:
    result = runner.invoke(commands.app, ["multistage"])
    assert result.exit_code == 0, result.output
    (got,) = captured
    assert got.provenance is not None  # multistage is reproducible: its epoch is read from git
    assert got == Settings(
        variant=Variant.MULTISTAGE,
        source=Path("go-src"),
        output=Path("build/helloworld-multistage.tar"),
        provenance=got.provenance,
    )
    assert captured[0].runtime_image == "alpine:3.22"
    assert captured[0].go_image == "golang:1.26"


def test_flags(captured: list[Settings]) -> None:
    args = [
        "builder",
        "--source",
        "src",
        "--package",
        "./cmd/app",
        "--no-test",
        "--go-image",
        "127.0.0.1:5000/library/golang:1.26",
        "--runtime-image",
        "scratch",
        "--name",
        "app",
        "--platform",
        "linux/amd64",
        "--platform",
        "linux/arm64",
        "--output",
        "out/app.tar",
        "--load",
        "--publish",
        "127.0.0.1:5443/app:1",
        "--registry-username",
        "ci",
        "--no-run",
        "--json",
        "out/app.json",
    ]
    result = runner.invoke(commands.app, args, env={"PIPELINE_REGISTRY_PASSWORD": "s3cret"})
    assert result.exit_code == 0, result.output
    (got,) = captured
    assert got.variant is Variant.BUILDER
    assert (got.source, got.package, got.test) == (Path("src"), "./cmd/app", False)
    assert got.on_scratch
    assert got.platforms == (Platform("linux", "amd64"), Platform("linux", "arm64"))
    assert (got.output, got.load, got.run, got.json_path) == (
        Path("out/app.tar"),
        True,
        False,
        Path("out/app.json"),
    )
    assert got.publish is not None
    assert got.publish.registry == "127.0.0.1:5443"
    assert got.registry_username == "ci"
    assert got.registry_password is not None
    assert got.registry_password.value == "s3cret"
    assert "s3cret" not in repr(got)


def test_env_vars(captured: list[Settings]) -> None:
    env = {
        "PIPELINE_RUNTIME_IMAGE": "busybox:1.35",
        "PIPELINE_NAME": "hello",
        "PIPELINE_PLATFORM": "linux/arm64",
        "PIPELINE_TEST": "false",
        "PIPELINE_NO_OUTPUT": "1",
    }
    result = runner.invoke(commands.app, ["naive"], env=env)
    assert result.exit_code == 0, result.output
    (got,) = captured
    assert (got.runtime_image, got.name, got.test, got.output) == (
        "busybox:1.35",
        "hello",
        False,
        None,
    )
    assert got.platforms == (Platform("linux", "arm64"),)


@pytest.mark.parametrize(
    ("args", "env", "message"),
    [
        (["--platform", "linux/"], {}, "--platform 'linux/' is malformed"),
        (["--platform", "amd64"], {}, "--platform 'amd64' is malformed"),
        (["--platform", "linux/sparc"], {}, "does not cross-compile"),
        (["--go-image", "Go Lang"], {}, "--go-image 'Go Lang' is not an image reference"),
        (["--runtime-image", "a::b"], {}, "--runtime-image 'a::b' is not an image reference"),
        (["--helper-image", "Busy Box"], {}, "--helper-image 'Busy Box' is not an image reference"),
        ([], {"PIPELINE_HELPER_IMAGE": "a::b"}, "--helper-image 'a::b' is not an image reference"),
        (["--publish", "x@sha256:1"], {}, "--publish 'x@sha256:1' is not an image reference"),
        (["--name", "Hello"], {}, "--name 'Hello' is not a valid image name"),
        (["--package", "cmd"], {}, "--package 'cmd'"),
        (["--registry-username", "u", "--publish", "a/b"], {}, "set PIPELINE_REGISTRY_PASSWORD"),
        (["--output", "x.tar", "--no-output"], {}, "contradict"),
    ],
)
def test_bad_flags_exit_2_with_one_line(
    captured: list[Settings], args: list[str], env: dict[str, str], message: str
) -> None:
    result = runner.invoke(commands.app, ["multistage", *args], env=env)
    assert result.exit_code == 2
    assert captured == []
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, lines
    assert message in lines[0]


def test_help_and_bad_flags_do_not_import_dagger() -> None:
    code = (
        "import sys\n"
        "from pipeline.cli import commands\n"
        "try:\n"
        "    commands.app(['multistage', '--platform', 'amd64'], prog_name='pipeline')\n"
        "except SystemExit as e:\n"
        "    assert e.code == 2, e.code\n"
        "assert 'dagger' not in sys.modules, 'dagger was imported'\n"
        "print('ok')\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=False
    )
    assert done.stdout.strip() == "ok", done.stderr


@pytest.fixture
def compared(monkeypatch: pytest.MonkeyPatch) -> list[tuple[tuple[Settings, ...], dict[str, int]]]:
    got: list[tuple[tuple[Settings, ...], dict[str, int]]] = []

    def fake(
        jobs: tuple[Settings, ...], outputs: object, budgets: dict[str, int], *, verbose: bool
    ) -> int:
        got.append((jobs, budgets))
        return 0

    monkeypatch.setattr(commands, "execute_compare", fake)
    return got


def test_compare_jobs_and_budgets_from_pyproject(
    compared: list[tuple[tuple[Settings, ...], dict[str, int]]],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    (tmp_path / "pyproject.toml").write_text(
        '[tool.pipeline.budgets]\nmultistage = "10MB"\nnaive = "1GB"\n'
    )
    monkeypatch.chdir(tmp_path)
    args = [
        "compare",
        "--runtime-image",
        "busybox:1.35",
        "--runtime-image",
        "scratch",
        "--max-size",
        "multistage=5MB",
    ]
    result = runner.invoke(commands.app, args)
    assert result.exit_code == 0, result.output
    ((jobs, budgets),) = compared
    assert [j.key for j in jobs] == ["naive", "builder", "multistage", "multistage-scratch"]
    assert budgets == {"multistage": 5_000_000, "naive": 1_000_000_000}  # the flag wins


@pytest.mark.parametrize(
    ("args", "pyproject", "message"),
    [
        (["--max-size", "multistage-busybx=1MB"], "", "compare makes no such image"),
        (["--chart", "x.pdf"], "", ".svg or .png"),
        ([], '[tool.pipeline.budgets]\nmultistage = "ten"\n', "is not a budget"),
        ([], "[tool.pipeline]\nbudgets = 3\n", "must be a table"),
        ([], "[tool.pipeline\n", "not valid TOML"),
        (
            ["--runtime-image", "busybox:1.35", "--runtime-image", "busybox:1.36"],
            "",
            "would both be helloworld:multistage-busybox",
        ),
    ],
)
def test_compare_bad_input_exits_2(
    compared: list[tuple[tuple[Settings, ...], dict[str, int]]],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    args: list[str],
    pyproject: str,
    message: str,
) -> None:
    if pyproject:
        (tmp_path / "pyproject.toml").write_text(pyproject)
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(commands.app, ["compare", "--runtime-image", "scratch", *args])
    assert result.exit_code == 2
    assert compared == []
    assert message in result.stderr


def test_the_password_leaves_the_environment_once_read(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """No child process (docker, the dagger CLI) inherits it: it is gone before the build."""
    seen: list[bool] = []

    def fake_execute(settings: Settings, *, verbose: bool) -> int:
        seen.append("PIPELINE_REGISTRY_PASSWORD" in os.environ)
        assert settings.registry_password is not None
        assert settings.registry_password.value == "s3cret"
        return 0

    monkeypatch.setattr(commands, "execute", fake_execute)
    args = ["multistage", "--publish", "127.0.0.1:5443/app:1", "--registry-username", "ci"]
    result = runner.invoke(commands.app, args, env={"PIPELINE_REGISTRY_PASSWORD": "s3cret"})
    assert result.exit_code == 0, result.output
    assert seen == [False]


def test_password_without_publish_is_ignored(captured: list[Settings]) -> None:
    result = runner.invoke(commands.app, ["naive"], env={"PIPELINE_REGISTRY_PASSWORD": "s3cret"})
    assert result.exit_code == 0, result.output
    assert captured[0].registry_password is None
