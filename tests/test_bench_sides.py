"""bench/shared/sides.py: the sides of the baseline (`ours@<short>`, export, publish and watch) have
names, files, image refs and a working directory of their own, and pass only absolute paths."""

from __future__ import annotations

from pathlib import Path

from bench.shared.baseline import Baseline
from bench.shared.programs import PROGRAMS
from bench.shared.sides import Ours, Workspace
from bench.speed.watch import OursWatch
from tests.bench_fixtures import ROOT


def test_sides_of_the_baseline_have_names_files_and_refs_of_their_own(tmp_path: Path) -> None:
    workspace = Workspace(
        root=tmp_path,
        registry="127.0.0.1:5000",
        docker="docker",
        ko=Path("ko"),
        go_image="golang:1.26",
        runtime_image="busybox:1.35",
        platform="linux/amd64",
    )
    chosen = Baseline("HEAD~3", "0" * 40, "1a2b3c4", tmp_path / "baseline" / "1a2b3c4")
    hello = PROGRAMS["helloworld"]
    now, before = Ours(workspace, publish=False), Ours(workspace, publish=False, baseline=chosen)
    assert (now.name, before.name) == ("ours (export)", "ours@1a2b3c4 (export)")
    assert Ours(workspace, publish=True, baseline=chosen).name == "ours@1a2b3c4 (publish)"
    assert OursWatch(workspace, before).name == "ours@1a2b3c4 (watch)"
    assert (now.cwd, before.cwd) == (ROOT, chosen.directory)
    assert now.file(hello, ".tar") != before.file(hello, ".tar")
    assert now.image_ref(hello) != Ours(workspace, publish=True, baseline=chosen).image_ref(hello)
    command = before.command(hello, tmp_path / "src", tmp_path / "r.json", watch=True)
    assert command[1:5] == ["-m", "pipeline", "multistage", "--watch"]
    assert all(Path(arg).is_absolute() for arg in command if "/" in arg and ":" not in arg)
