"""bench/cli.py: its command line: `--help` answers without importing dagger; bad flags exit 2,
and a --baseline that names no revision exits 1 in one line, before any work; and resolve(): the
defaults and --quick as the documented work, and --baseline as a commit under the work
directory."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from bench.speed.scenarios import Scenario
from tests.bench_fixtures import ROOT, _bench, _git, _resolve


def test_help_answers_without_importing_dagger() -> None:
    done = _bench("--help", env={**os.environ, "COLUMNS": "200"})
    assert done.returncode == 0, done.stderr
    for flag in ("--samples", "--quick", "--json", "--programs"):
        assert flag in done.stdout, f"{flag} missing from --help"
    imported = subprocess.run(
        [sys.executable, "-c", "import sys, bench.cli; print('dagger' in sys.modules)"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    assert imported.stdout.strip() == "False"


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (["--samples", "0"], "--samples"),
        (["--programs", "nosuch"], "choose from helloworld, age"),
        (["--scenarios", "warm"], "choose from cold"),
        (["--quick", "--samples", "3"], "--quick"),
        (["--quick", "--programs", "age"], "hello world only"),
    ],
)
def test_bad_flags_exit_2_before_any_work(args: list[str], said: str) -> None:
    done = _bench(*args, env={**os.environ, "COLUMNS": "200"})
    assert done.returncode == 2, f"got exit {done.returncode}, want 2: {done.stderr}"
    assert said in done.stderr


def test_defaults_and_quick_resolve_to_the_documented_work() -> None:
    full = _resolve()
    quick = _resolve(quick=True)
    some = _resolve(
        samples=3, cold_samples=2, programs=["age,helloworld"], scenarios=["cold", "no change"]
    )
    assert (full.samples, full.cold_samples, full.programs) == (5, 1, ("helloworld", "age"))
    assert full.scenarios == tuple(Scenario)
    assert full.peers == ("docker", "ko")
    assert (quick.samples, quick.cold_samples, quick.programs) == (1, 1, ("helloworld",))
    assert quick.quick
    assert not full.quick
    assert (some.samples, some.cold_samples) == (3, 2)
    assert some.programs == ("age", "helloworld")
    assert some.scenarios == (Scenario.COLD, Scenario.NO_CHANGE)


@pytest.mark.parametrize("ref", ["no-such-revision", "HEAD^{tree}", "--all"])
def test_a_bad_baseline_says_so_in_one_line_and_exits_1(ref: str, tmp_path: Path) -> None:
    done = _bench("--quick", f"--baseline={ref}", f"--json={tmp_path / 'x.json'}")
    assert done.returncode == 1, f"got exit {done.returncode}, want 1: {done.stderr}"
    assert done.stderr.strip() == f"bench: --baseline {ref}: not a git revision here"
    assert done.stdout == ""
    assert not (tmp_path / "x.json").exists()


def test_baseline_resolves_to_a_commit_under_the_work_directory(tmp_path: Path) -> None:
    options = _resolve(baseline="HEAD", work=tmp_path)
    assert options.baseline is not None
    assert options.baseline.commit == _git("rev-parse", "HEAD")
    assert options.baseline.short == _git("rev-parse", "--short", "HEAD")
    assert options.baseline.directory == tmp_path.resolve() / "baseline" / options.baseline.short
    assert options.baseline.label == f"ours@{options.baseline.short}"
    assert _resolve().baseline is None
