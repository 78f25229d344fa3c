"""pipeline.cli.config: the build flags from pipeline.toml at the source's root (or --config),
a flag on the command line first, then its variable, then the file, then the default; a
path relative to the file; bad files refused in one line naming the file, the line and the
key, before any engine work. In this process (the command's settings captured), and once
against the real engine: a build made with the file's settings."""

from __future__ import annotations

import json
import shutil
import typing
from pathlib import Path

import pytest
from typer.testing import CliRunner

from pipeline.cli import commands, config
from pipeline.settings import Settings
from tests.conftest import ROOT, PipelineRunner

runner = CliRunner()


@pytest.fixture
def source(tmp_path: Path) -> Path:
    copy = tmp_path / "src"
    shutil.copytree(ROOT / "go-src", copy)
    return copy


def _run(source: Path, *args: str, env: dict[str, str] | None = None) -> tuple[int, str]:
    result = runner.invoke(commands.app, ["multistage", "--source", str(source), *args], env=env)
    return result.exit_code, result.stderr


def test_the_file_sets_what_no_flag_or_variable_gives(
    captured: list[Settings], source: Path
) -> None:
    (source / "pipeline.toml").write_text(
        'go-image = "golang:1.26-alpine"\n'
        'runtime-image = "busybox:1.35"\n'
        'name = "api"\n'
        'platform = ["linux/amd64", "linux/arm64"]\n'
        "push-timeout = 120\n"
        "test = false\n"
        'output = "out/api.tar"\n'
    )
    code, said = _run(source)
    assert code == 0, said
    (got,) = captured
    assert (got.go_image, got.runtime_image, got.name) == (
        "golang:1.26-alpine",
        "busybox:1.35",
        "api",
    )
    assert [str(p) for p in got.platforms] == ["linux/amd64", "linux/arm64"]
    assert got.push_timeout == 120.0
    assert got.test is False
    assert got.output == source / "out" / "api.tar"  # relative to the file


def test_a_flag_then_its_variable_then_the_file_then_the_default(
    captured: list[Settings], source: Path
) -> None:
    (source / "pipeline.toml").write_text('name = "fromfile"\ngo-image = "golang:1.25"\n')
    _run(source, "--name", "fromflag", env={"PIPELINE_NAME": "fromenv"})
    _run(source, env={"PIPELINE_NAME": "fromenv"})
    _run(source)
    (source / "pipeline.toml").unlink()
    _run(source)
    assert [s.name for s in captured] == ["fromflag", "fromenv", "fromfile", "helloworld"]
    assert [s.go_image for s in captured] == ["golang:1.25"] * 3 + ["golang:1.26"]


def test_the_build_and_image_settings_in_the_file(captured: list[Settings], source: Path) -> None:
    (source / "files").mkdir()
    (source / "pipeline.toml").write_text(
        'ldflags = "-X main.name={{.Name}}"\n'
        'build-tags = ["netgo"]\n'
        'ports = [8080, "53/udp"]\n'
        'cmd = ["serve"]\n'
        'files = "files"\n'
        'publish = "127.0.0.1:5000/x/api"\n'
        'tags = ["sha", "main"]\n'
        "[env]\n"
        'PORT = "8080"\n'
        "DEBUG = false\n"
        "[labels]\n"
        '"org.example.team" = "payments"\n'
    )
    code, said = _run(source)
    assert code == 0, said
    (got,) = captured
    assert got.go_build.ldflags == "-X main.name=helloworld"
    assert got.go_build.tags == ("netgo",)
    assert got.image.ports == ("8080/tcp", "53/udp")
    assert got.image.cmd == ("serve",)
    assert got.image.files == source / "files"
    assert got.image.env == (("PORT", "8080"), ("DEBUG", "false"))
    assert got.image.labels == (("org.example.team", "payments"),)
    assert str(got.publish) == "127.0.0.1:5000/x/api:sha"
    assert got.tags == ("main",)


SERVICES = (
    'ldflags = "-X main.name={{.Name}}"\n'
    'publish = "127.0.0.1:5000/team/{{.Name}}:main"\n'
    "[images.api]\n"
    'package = "./cmd/api"\n'
    'cmd = ["serve"]\n'
    "[images.worker]\n"
    'package = "./cmd/worker"\n'
    'name = "jobs"\n'
)


def _services(source: Path) -> None:
    for main in ("cmd/api", "cmd/worker"):
        (source / main).mkdir(parents=True)
        shutil.copy(source / "helloworld.go", source / main / "main.go")
    (source / "pipeline.toml").write_text(SERVICES)


def test_each_image_table_is_an_image(captured: list[Settings], source: Path) -> None:
    _services(source)
    code, said = _run(source, "--no-test")
    assert code == 0, said
    api, jobs = captured
    assert (api.name, api.package, api.image.cmd) == ("api", "./cmd/api", ("serve",))
    assert (jobs.name, jobs.package, jobs.image.cmd) == ("jobs", "./cmd/worker", ())
    assert (api.go_build.ldflags, jobs.go_build.ldflags) == (
        "-X main.name=api",
        "-X main.name=jobs",
    )
    assert api.publish is not None
    assert jobs.publish is not None
    assert (api.publish.path, jobs.publish.path) == ("team/api", "team/jobs")
    assert api.publish.tag == jobs.publish.tag != ""
    assert (api.test, jobs.test) == (False, False)  # the command line's, for every image


def test_image_picks_some(captured: list[Settings], source: Path) -> None:
    _services(source)
    code, said = _run(source, "--image", "worker")
    assert code == 0, said
    assert [s.name for s in captured] == ["jobs"]


@pytest.mark.parametrize(
    ("args", "toml", "message"),
    [
        (["--image", "web"], SERVICES, "--image web: {file} names api, worker"),
        (["--image", "api"], 'name = "one"\n', "--image api: {file} names no images"),
        (["--image", "api"], None, "--image api: there is no config file to name images"),
        (
            ["--publish", "127.0.0.1:5000/team/one:1"],
            SERVICES,
            "--publish: api and jobs would both go to 127.0.0.1:5000/team/one:1",
        ),
        (["--watch"], SERVICES, "--watch builds one image: choose it with --image NAME"),
    ],
)
def test_a_wrong_choice_of_images_is_one_line(
    captured: list[Settings], source: Path, args: list[str], toml: str | None, message: str
) -> None:
    _services(source)
    if toml is None:
        (source / "pipeline.toml").unlink()
    else:
        (source / "pipeline.toml").write_text(toml)
    code, said = _run(source, *args)
    assert code == 2, said
    (only,) = said.strip().splitlines()
    assert only.startswith("error: " + message.format(file=source / "pipeline.toml")), said
    assert captured == []


@pytest.mark.parametrize("command", ["compare", "verify"])
def test_compare_and_verify_build_one_image_of_the_file(
    captured: list[Settings], source: Path, command: str
) -> None:
    _services(source)
    runner.invoke(commands.app, [command, "--source", str(source), "--image", "worker"])
    assert {(s.name, s.package) for s in captured} == {("jobs", "./cmd/worker")}
    assert {s.go_build.ldflags for s in captured} == {"-X main.name=jobs"}
    assert {s.publish for s in captured} == {None}  # they write their own results
    assert {s.output for s in captured} == {None}


@pytest.mark.parametrize("command", ["compare", "verify"])
def test_compare_and_verify_leave_signing_to_the_build_commands(
    captured: list[Settings], source: Path, command: str
) -> None:
    """They push nothing: a file's sign-key and provenance are the build commands' only."""
    (source / "pipeline.toml").write_text(
        'publish = "127.0.0.1:5000/team/app"\nsign-key = "release.pem"\n'
        'signature-format = "both"\nprovenance = "build/p.json"\n'
    )
    result = runner.invoke(commands.app, [command, "--source", str(source)])
    assert result.exit_code == 0, result.stderr
    assert {(s.sign_key, s.provenance_file) for s in captured} == {(None, None)}


@pytest.mark.parametrize("command", ["compare", "verify"])
def test_compare_and_verify_ask_which_image(
    captured: list[Settings], source: Path, command: str
) -> None:
    _services(source)
    result = runner.invoke(commands.app, [command, "--source", str(source)])
    assert result.exit_code == 2
    assert result.stderr.strip() == (
        f"error: {command} builds one image: choose it with --image NAME (api, worker)"
    )
    assert captured == []


def test_config_names_another_file(captured: list[Settings], source: Path, tmp_path: Path) -> None:
    elsewhere = tmp_path / "ci" / "build.toml"
    elsewhere.parent.mkdir()
    elsewhere.write_text('name = "elsewhere"\nlock = "pins.json"\n')
    code, said = _run(source, "--config", str(elsewhere))
    assert code == 0, said
    assert captured[0].name == "elsewhere"
    assert captured[0].lock == elsewhere.parent / "pins.json"


@pytest.mark.parametrize(
    ("text", "line", "message"),
    [
        ('name = "ok"\ngo-imagee = "golang:1.26"\n', 2, "go-imagee: unknown key"),
        ('name = "ok"\n\ntest = "yes"\n', 3, "test: give true or false, not 'yes'"),
        ("push-timeout = true\n", 1, "push-timeout: give a number"),
        ('platform = "linux/amd64"\n', 1, "platform: give a list of strings"),
        ("name = 3\n", 1, "name: give a string, not 3"),
        ('source = "elsewhere"\n', 1, "source: not read from the file"),
        ('registry-password = "s3cret"\n', 1, "a password never goes into a file"),
        ('name = "ok"\nname = "twice"\n', 2, "not TOML"),
        ('name = "ok"\n[images]\n', 2, "images: names no images: add an [images.NAME] table"),
        ('images = ["api"]\n', 1, "images: give one [images.NAME] table per image"),
        (
            '[images.api]\npackage = "./cmd/api"\n[images.worker]\npackagee = "./cmd/w"\n',
            4,
            "images.worker.packagee: unknown key",
        ),
        ("[images.api]\ntest = false\n", 2, "images.api.test: set for the whole run"),
        (
            '[images.api]\nldflags = "{{.Nope}}"\n',
            0,
            "--ldflags: {{.Nope}} is not a field",
        ),
        ('name = "ok"\n[platform]\nlinux = "amd64"\n', 2, "platform: give a list of strings"),
        ('tag = ["a"]\ntags = ["b"]\n', 2, "tags: given twice (as tag and its plural)"),
        ('[labels]\nteam = ["a"]\n', 1, "labels: give a table of strings"),
        ("ports = [true]\n", 1, "ports: give a list of strings"),
    ],
)
def test_a_bad_file_is_one_line_naming_file_line_and_key(
    captured: list[Settings], source: Path, text: str, line: int, message: str
) -> None:
    (source / "pipeline.toml").write_text(text)
    code, said = _run(source)
    assert code == 2
    assert captured == []
    (only,) = said.strip().splitlines()
    if line:  # 0: the value is wrong, not the file (a bad template)
        assert only.startswith(f"error: {source / 'pipeline.toml'}:{line}: "), only
    assert message in only
    assert "s3cret" not in said


def test_a_config_that_is_not_there_is_one_line(captured: list[Settings], source: Path) -> None:
    code, said = _run(source, "--config", str(source / "nope.toml"))
    assert code == 2
    assert said.strip() == f"error: --config {source / 'nope.toml'}: no such file"
    assert captured == []


@pytest.mark.engine
def test_a_build_made_with_the_files_settings(
    pipeline: PipelineRunner, source: Path, tmp_path: Path
) -> None:
    (source / "pipeline.toml").write_text(
        'name = "fromfile"\nruntime-image = "busybox:1.35"\ntest = false\njson = "report.json"\n'
        "no-output = true\n"
    )
    ran = pipeline("multistage", "--source", str(source))
    assert ran.returncode == 0, ran.stderr
    report = json.loads((source / "report.json").read_text())
    assert report["runtime_image"] == "busybox:1.35"
    assert report["images"][0]["ref"] == "fromfile:multistage"
    assert report["printed"] == "Hello World\n"


def test_the_readme_lists_every_key_with_its_flag_and_variable() -> None:
    """README's reference of the file's keys holds every build flag, as the file reads it."""
    text = (ROOT / "README.md").read_text()
    section = text.split("### The config file's keys", 1)[1].split("\n## ", 1)[0]
    rows = {
        cells[1].split("`")[1]: cells[1:4]
        for line in section.splitlines()
        if line.startswith("| `") and (cells := line.split("|"))
    }
    keys, hints = config._names()
    own = {key: name for key, name in keys.items() if config._key(name, hints[name]) == key}
    assert set(rows) == set(own), set(rows) ^ set(own)
    for key, name in own.items():
        _, flag, variable = rows[key]
        assert f"`--{key}" in flag, (key, flag)
        option = typing.get_args(hints[name])[1]
        if option.envvar:
            assert f"`{option.envvar}`" in variable, (key, variable)
