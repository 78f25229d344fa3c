"""pipeline.cli.progress: the plain lines and the live display, as rendered; when each is chosen
(nothing under --quiet or `dagger run`); --quiet reaching Settings. Against the real engine: a
piped run prints each step's start and end on stderr, in order, with the times and sizes its
JSON has, and a failed step as stopped; --quiet prints nothing there; stdout is the same with
and without the display (live on a terminal, or plain lines); under `dagger run`
nothing is added to its output. (That compare names each step's image is tested on
tests/test_compare.py's first compare, whose stderr it reads.)"""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import subprocess
import threading
import uuid
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console
from typer.testing import CliRunner

from pipeline.cli import commands
from pipeline.cli.progress import (
    Lines,
    LiveSteps,
    display,
    finished_line,
    started_line,
)
from pipeline.clock import Clock
from pipeline.results import Step, human_size
from pipeline.settings import Settings
from tests.conftest import ROOT, PipelineRunner, Ran, Testbed

DAGGER_RUN = {"DAGGER_SESSION_PORT": "36111", "DAGGER_SESSION_TOKEN": "t0ken"}

# --- the plain lines ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("got", "want"),
    [
        (started_line("build"), "pipeline: build ..."),
        (started_line("export builder", "helloworld:builder"),
         "pipeline: export builder helloworld:builder ..."),
        (finished_line(Step("build", 3.214)), "pipeline: build done 3.21s"),
        (finished_line(Step("export", 0.29, 1_730_000)), "pipeline: export done 0.29s (1.73MB)"),
        (finished_line(Step("publish", 12.0, 241_000_000), "helloworld:naive"),
         "pipeline: publish helloworld:naive done 12.00s (241MB)"),
        (finished_line(Step("build", 3.2, None), ok=False), "pipeline: build stopped after 3.20s"),
        (finished_line(Step("export", 0.1, 5), ok=False), "pipeline: export stopped after 0.10s"),
    ],
)  # fmt: skip
def test_plain_lines(got: str, want: str) -> None:
    assert got == want, f"got {got!r}, want {want!r}"


def test_lines_follow_a_clock_one_per_start_and_end_in_order() -> None:
    out = io.StringIO()
    clock = Clock(Lines(out), label="helloworld:multistage")
    with clock.step("build"):
        pass
    with clock.step("export") as running:
        running.size = 1_730_000
    with pytest.raises(RuntimeError), clock.step("publish"):
        raise RuntimeError("registry gone")
    got = out.getvalue().splitlines()
    build, export, publish = clock.steps
    assert got == [
        "pipeline: build ...",
        f"pipeline: build done {build.seconds:.2f}s",
        "pipeline: export ...",
        f"pipeline: export done {export.seconds:.2f}s (1.73MB)",
        "pipeline: publish ...",
        f"pipeline: publish stopped after {publish.seconds:.2f}s",
    ]
    assert "\x1b" not in out.getvalue()
    assert "\r" not in out.getvalue()


def test_labelled_lines_name_the_image_and_a_shared_step_none() -> None:
    out = io.StringIO()
    lines = Lines(out, labelled=True)
    lines.started("test", "")
    lines.finished(Step("test", 1.0), "", True)
    lines.started("build", "helloworld:naive")
    lines.started("build", "helloworld:multistage-scratch")
    lines.finished(Step("build", 2.0), "helloworld:multistage-scratch", True)
    assert out.getvalue().splitlines() == [
        "pipeline: test ...",
        "pipeline: test done 1.00s",
        "pipeline: build helloworld:naive ...",
        "pipeline: build helloworld:multistage-scratch ...",
        "pipeline: build helloworld:multistage-scratch done 2.00s",
    ]


# --- which display -----------------------------------------------------------------------


class Terminal(io.StringIO):
    """A stream that says it is a terminal (as stderr on one does)."""

    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize(
    ("quiet", "env", "stream", "want"),
    [
        (False, {}, io.StringIO(), Lines),
        (False, {"TERM": "xterm-256color"}, Terminal(), LiveSteps),
        (False, {"TERM": "dumb"}, Terminal(), Lines),
        (True, {}, io.StringIO(), None),
        (True, {}, Terminal(), None),
        (False, DAGGER_RUN, io.StringIO(), None),
        (False, DAGGER_RUN, Terminal(), None),
        (False, {"DAGGER_SESSION_PORT": "36111"}, io.StringIO(), Lines),  # not dagger run's pair
    ],
)
def test_the_display_chosen(
    quiet: bool, env: dict[str, str], stream: io.StringIO, want: type[Any] | None
) -> None:
    with display(quiet=quiet, env=env, stream=stream) as chosen:
        got = None if chosen is None else type(chosen)
    assert got is want, f"quiet={quiet} env={env}: got {got}, want {want}"
    assert stream.getvalue() == ""  # nothing before a step starts


# --- the live display, rendered ----------------------------------------------------------


class FakeTime:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def shown(live: LiveSteps) -> list[str]:
    console = Console(file=io.StringIO(), width=120, color_system=None)
    console.print(live.render())
    text = console.file.getvalue()  # type: ignore[attr-defined]
    return [line.rstrip() for line in text.splitlines()]


def test_live_shows_the_step_under_way_its_time_and_the_steps_done() -> None:
    now = FakeTime()
    live = LiveSteps(Console(file=io.StringIO()), now=now)
    live.started("test", "helloworld:multistage")
    now.now += 4.1
    assert [line[2:] for line in shown(live)] == ["test 4.1s"]
    live.finished(Step("test", 4.1), "helloworld:multistage", True)
    live.started("build", "helloworld:multistage")
    now.now += 2.04
    live.finished(Step("build", 2.04), "helloworld:multistage", True)
    now.now += 0.3  # between two steps: the time since the last one
    assert [line[2:] for line in shown(live)] == ["working 0.3s  done: test 4.10s, build 2.04s"]
    live.started("export", "helloworld:multistage")
    now.now += 0.25
    live.finished(Step("export", 0.25, 1_730_000), "helloworld:multistage", True)
    live.started("run", "helloworld:multistage")
    now.now += 0.5
    (line,) = shown(live)
    assert line[2:] == "run 0.5s  done: test 4.10s, build 2.04s, export 0.25s (1.73MB)"
    live.stop()


def test_live_labelled_has_a_line_per_image_for_overlapping_steps() -> None:
    now = FakeTime()
    live = LiveSteps(Console(file=io.StringIO()), labelled=True, now=now)
    live.started("test", "")
    now.now += 1
    live.finished(Step("test", 1.0), "", True)
    for tag in ("helloworld:naive", "helloworld:multistage"):
        live.started("build", tag)
    now.now += 1.5
    live.finished(Step("build", 1.5), "helloworld:multistage", True)
    live.started("export", "helloworld:multistage")
    now.now += 0.2
    assert [line[2:] for line in shown(live)] == [
        "done: test 1.00s",
        "helloworld:naive: build 1.7s",
        "helloworld:multistage: export 0.2s  done: build 1.50s",
    ]
    live.finished(Step("export", 0.2, 5_000), "helloworld:multistage", False)
    assert (
        shown(live)[2] == "  helloworld:multistage  done: build 1.50s, export stopped after 0.20s"
    )
    live.pause()  # --watch, before it prints a result: the next build starts afresh
    live.started("test", "")
    assert [line[2:] for line in shown(live)] == ["test 0.0s"]
    live.stop()


# --- --quiet reaches Settings ------------------------------------------------------------


@pytest.fixture
def settings_given(monkeypatch: pytest.MonkeyPatch) -> list[Settings]:
    """The Settings each command would run with (the launch is replaced: parsing only)."""
    got: list[Settings] = []

    def one(settings: Settings, *, verbose: bool) -> int:
        got.append(settings)
        return 0

    def many(jobs: tuple[Settings, ...], outputs: object, budgets: object, *, verbose: bool) -> int:
        got.extend(jobs)
        return 0

    for name in ("execute", "execute_watch", "execute_verify"):
        monkeypatch.setattr(commands, name, one)
    monkeypatch.setattr(commands, "execute_compare", many)
    for key in list(os.environ):
        if key.startswith("PIPELINE_"):
            monkeypatch.delenv(key)
    return got


@pytest.mark.parametrize(
    ("args", "env", "want"),
    [
        (["multistage"], {}, [False]),
        (["multistage", "--quiet"], {}, [True]),
        (["naive", "--watch"], {"PIPELINE_QUIET": "1"}, [True]),
        (["verify", "--quiet"], {}, [True]),
        (["verify"], {"PIPELINE_QUIET": "true"}, [True]),
        (["compare", "--quiet"], {}, [True, True, True]),
        (["compare"], {}, [False, False, False]),
    ],
)
def test_quiet_flag_and_env(
    settings_given: list[Settings], args: list[str], env: dict[str, str], want: list[bool]
) -> None:
    result = CliRunner().invoke(commands.app, args, env=env)
    assert result.exit_code == 0, result.output
    assert [s.quiet for s in settings_given] == want


def test_quiet_is_in_every_build_commands_help() -> None:
    for command in ("multistage", "compare", "verify"):
        helped = CliRunner().invoke(commands.app, [command, "--help"], env={"COLUMNS": "200"})
        assert "--quiet" in helped.output, command
        assert "PIPELINE_QUIET" in helped.output, command


# --- against the engine ------------------------------------------------------------------

STEP_LINE = re.compile(r"^pipeline: (?P<subject>.+?) (?:\.\.\.|done (?P<seconds>\d+\.\d\d)s)")


def masked(stdout: str) -> str:
    """The summary with the step times (which differ from run to run) masked; nothing else."""
    return re.sub(
        r"^steps: .*$",
        lambda m: re.sub(r"\d+\.\d\ds", "T", m.group(0)),
        stdout,
        flags=re.MULTILINE,
    )


def expected_lines(document: dict[str, Any]) -> list[re.Pattern[str]]:
    """The stderr of a piped run: for each step of its JSON, in order, its start line and its
    end line with its time (the JSON's, to the line's 2 decimals) and, for the export, the
    image's compressed size, for the push the bytes it sent (a base's layers mounted from
    the base's repository are not sent)."""
    image = document["images"][0]
    sizes = {"export": image["size"]["compressed"], "publish": image["published_bytes"]}
    patterns = []
    for step in document["steps"]:
        name = re.escape(step["name"])
        size = sizes.get(step["name"])
        moved = re.escape(f" ({human_size(size)})") if size is not None else ""
        patterns.append(re.compile(rf"pipeline: {name} \.\.\."))
        patterns.append(re.compile(rf"pipeline: {name} done (\d+\.\d\d)s{moved}"))
    return patterns


def check_lines(stderr: str, document: dict[str, Any]) -> None:
    got = stderr.splitlines()
    want = expected_lines(document)
    assert len(got) == len(want), f"got {got}, want {[w.pattern for w in want]}"
    for line, pattern, index in zip(got, want, range(len(got)), strict=True):
        match = pattern.fullmatch(line)
        assert match, f"line {index}: got {line!r}, want {pattern.pattern!r}"
        if match.groups():
            seconds = document["steps"][index // 2]["seconds"]
            assert abs(float(match.group(1)) - seconds) <= 0.0051, (line, seconds)


def build_args(tmp_path: Path, tag: str, *extra: str) -> list[str]:
    return [
        "multistage",
        "--runtime-image",
        "busybox:1.35",
        "--output",
        str(tmp_path / "hello.tar"),
        "--json",
        str(tmp_path / f"{tag}.json"),
        *extra,
    ]


@pytest.mark.engine
def test_a_piped_run_prints_each_step_as_it_starts_and_ends_in_order(
    pipeline: PipelineRunner, tmp_path: Path, testbed: Testbed
) -> None:
    publish = f"{testbed.registry}/progress/hello:{uuid.uuid4().hex[:8]}"
    ran = pipeline(*build_args(tmp_path, "piped", "--publish", publish))
    assert ran.returncode == 0, ran.stderr
    document = json.loads((tmp_path / "piped.json").read_text())
    names = [s["name"] for s in document["steps"]]
    assert names == ["test", "build", "export", "sbom", "publish", "run"]
    check_lines(ran.stderr, document)
    assert "\x1b" not in ran.stderr
    assert "\r" not in ran.stderr
    assert "pipeline: " not in ran.stdout  # the progress is stderr's alone


@pytest.mark.engine
def test_quiet_prints_no_progress_and_the_summary_is_the_same_without_it(
    pipeline: PipelineRunner, tmp_path: Path
) -> None:
    quiet = pipeline(*build_args(tmp_path, "quiet", "--quiet"))
    shown = pipeline(*build_args(tmp_path, "shown"))
    from_env = pipeline(*build_args(tmp_path, "env"), extra_env={"PIPELINE_QUIET": "1"})
    for ran in (quiet, shown, from_env):
        assert ran.returncode == 0, ran.stderr
    assert quiet.stderr == "", "--quiet: the summary and errors only"
    assert from_env.stderr == "", "PIPELINE_QUIET: the summary and errors only"
    check_lines(shown.stderr, json.loads((tmp_path / "shown.json").read_text()))
    # The same summary, byte for byte but for the step times; the masking hides nothing else.
    assert masked(shown.stdout) == masked(quiet.stdout) == masked(from_env.stdout)
    assert re.search(
        r"^steps: test T, build T, export T, sbom T, run T$", masked(shown.stdout), re.M
    )
    # and the same result: the JSON differs in the step times only.
    documents = [json.loads((tmp_path / f"{t}.json").read_text()) for t in ("quiet", "shown")]
    for document in documents:
        for step in document["steps"]:
            step["seconds"] = None
    assert documents[0] == documents[1]


def on_a_terminal(pipeline: PipelineRunner, args: list[str]) -> Ran:
    """Run the pipeline with stderr on a pseudo-terminal and stdout a pipe (as `> out.txt`
    from a terminal): its stdout, and all the terminal got."""
    master, slave = os.openpty()
    chunks: list[bytes] = []

    def drain() -> None:
        while True:
            try:
                chunk = os.read(master, 65536)
            except OSError:  # EIO: the terminal's last user closed it
                return
            if not chunk:
                return
            chunks.append(chunk)

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    try:
        done = subprocess.run(
            pipeline.command(*args),
            cwd=ROOT,
            env={**pipeline.env, "COLUMNS": "200", "TERM": "xterm-256color"},
            stdout=subprocess.PIPE,
            stderr=slave,
            text=True,
            check=False,
            timeout=900,
        )
    finally:
        os.close(slave)
        reader.join(timeout=10)
        os.close(master)
    return Ran(done.returncode, done.stdout, b"".join(chunks).decode(errors="replace"))


@pytest.mark.engine
def test_on_a_terminal_the_live_display_is_on_stderr_and_stdout_is_unchanged(
    pipeline: PipelineRunner, tmp_path: Path
) -> None:
    # A tree no cache has seen: vet, test and build run for a while, the display redraws.
    source = tmp_path / "src"
    shutil.copytree(ROOT / "go-src", source)
    with (source / "greeting.go").open("a") as greeting:
        greeting.write(f"// {uuid.uuid4().hex}\n")
    args = ["--source", str(source)]
    live = on_a_terminal(pipeline, build_args(tmp_path, "live", *args))
    quiet = pipeline(*build_args(tmp_path, "quiet", "--quiet", *args))
    assert live.returncode == 0, live.stderr
    assert quiet.returncode == 0, quiet.stderr
    assert masked(live.stdout) == masked(quiet.stdout)
    assert "\x1b" not in live.stdout
    terminal = live.stderr
    # The live line: the step under way with its elapsed time (one decimal), redrawn in
    # place (rich's Live erases the line it drew), and at the end the steps done.
    assert re.search(r"[⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏] test \d+\.\ds", terminal), terminal
    assert "\x1b[2K" in terminal
    assert re.search(r"done: test [\d.]+s, build [\d.]+s, export [\d.]+s \(\d", terminal)
    assert "pipeline: " not in terminal  # not the plain lines of a pipe


@pytest.mark.engine
def test_a_failed_step_is_said_to_have_stopped_before_the_error(
    pipeline: PipelineRunner, tmp_path: Path
) -> None:
    source = tmp_path / "src"
    shutil.copytree(ROOT / "go-src", source)
    with (source / "greeting.go").open("a") as greeting:
        greeting.write("\nfunc broken() int { return undefinedName }\n")
    ran = pipeline("multistage", "--source", str(source), "--no-test", "--no-output")
    assert ran.returncode == 1, ran.stderr
    lines = ran.stderr.splitlines()
    assert lines[0] == "pipeline: build ..."
    assert re.fullmatch(r"pipeline: build stopped after \d+\.\d\ds", lines[1]), lines
    assert any("undefined: undefinedName" in line for line in lines[2:]), lines
    assert lines[-1].startswith("error: `go build "), lines
    assert ran.stdout == ""


@pytest.mark.engine
def test_under_dagger_run_nothing_is_added(
    pipeline: PipelineRunner, tmp_path: Path, engine_env: dict[str, str]
) -> None:
    dagger_cli = engine_env.get("_EXPERIMENTAL_DAGGER_CLI_BIN", "dagger")
    ran = pipeline(*build_args(tmp_path, "tui"), prefix=(dagger_cli, "run"))
    assert ran.returncode == 0, ran.stderr[-2000:]
    assert "steps: test " in ran.stdout  # it ran, under dagger run
    ours = [line for line in ran.stderr.splitlines() if line.startswith("pipeline: ")]
    assert ours == [], ours
