"""bench/speed/watch.py: the --watch process as the harness sees it (a stand-in here): each build
timed by its `watching` line, a build that printed `error:` failed, a process that ended or says
nothing an error; and (against the engine) a real one, whose build of an edit that does not
compile fails the sample, undoes the edit and stops on SIGINT."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest

from bench.shared.programs import PROGRAMS, BenchError
from bench.shared.sides import Ours, Workspace
from bench.speed.watch import OursWatch, WatchProcess
from tests.bench_fixtures import fixture_hello as fixture_hello  # the `hello` fixture

# A stand-in for `python -m pipeline multistage --watch` as the harness sees it: lines on
# stderr (argv), then it waits for SIGINT and exits 130, or exits with the code given.
FAKE_WATCH = """
import sys, time
*lines, code = sys.argv[1:]
try:
    for line in lines:
        print(line, file=sys.stderr, flush=True)
        time.sleep(0.05)
    if code != "wait":
        sys.exit(int(code))
    time.sleep(60)
except KeyboardInterrupt:
    sys.exit(130)
"""


def _fake(tmp_path: Path, *args: str) -> WatchProcess:
    return WatchProcess(
        "fake (watch)",
        [sys.executable, "-c", FAKE_WATCH, *args],
        cwd=tmp_path,
        log=tmp_path / "fake.log",
    )


def test_watch_process_times_each_build_by_its_watching_line(tmp_path: Path) -> None:
    process = _fake(tmp_path, "building", "watching /src", "watching /src", "wait")
    try:
        start = time.perf_counter()
        first = process.next_build(30)
        second = process.next_build(30)
        assert start < first <= second <= time.perf_counter()
        assert list(process.tail) == ["building", "watching /src", "watching /src"]
    finally:
        assert process.stop() == 130


def test_watch_process_fails_a_build_that_printed_error(tmp_path: Path) -> None:
    process = _fake(
        tmp_path, "go: x.go:3: syntax error", "error: the build failed", "watching /src", "wait"
    )
    try:
        with pytest.raises(
            BenchError, match=r"fake \(watch\): the build failed .*error: the build"
        ):
            process.next_build(30)
    finally:
        assert process.stop() == 130


def test_watch_process_that_ends_or_says_nothing_is_an_error(tmp_path: Path) -> None:
    ended = _fake(tmp_path, "boom", "3")
    with pytest.raises(BenchError, match=r"ended \(exit 3\)(.|\n)*boom"):
        ended.next_build(30)
    assert ended.stop() == 3
    silent = _fake(tmp_path, "wait")
    try:
        start = time.perf_counter()
        with pytest.raises(BenchError, match="no build result"):
            silent.next_build(0.5)
        assert 0.5 <= time.perf_counter() - start < 5
    finally:
        assert silent.stop() == 130


@pytest.mark.engine
def test_a_watch_build_that_fails_fails_the_sample(
    engine_env: dict[str, str], hello: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A real --watch process; an edit that does not compile (the nonce closes the string):
    the sample fails and says why, the edit is undone, the process stops on SIGINT (130)."""
    for key, value in engine_env.items():
        monkeypatch.setenv(key, value)
    workspace = Workspace(
        root=tmp_path / "work",
        registry=engine_env.get("TESTBED_REGISTRY", "127.0.0.1:5000"),
        docker="docker",
        ko=Path("ko"),
        go_image="golang:1.26",
        runtime_image="busybox:1.35",
        platform="linux/amd64",
    )
    program = PROGRAMS["helloworld"]
    side = OursWatch(workspace, Ours(workspace, publish=False))
    said: list[str] = []
    try:
        assert side.start(program, hello, said.append) > 0
        assert side.source is not None
        original = (side.source / program.source_file).read_bytes()
        with pytest.raises(BenchError, match=r"ours \(watch\): the build failed") as failed:
            side.sample(program, 'broken" here')
        assert "greeting.go" in str(failed.value), "the message quotes the compiler"
        assert (side.source / program.source_file).read_bytes() == original
    finally:
        assert side.stop() == 130
    assert "first build" in said[0]
