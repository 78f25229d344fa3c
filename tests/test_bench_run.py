"""bench/speed/run.py: the sides of each sample in an order rotated by its index, so that each goes
first in turn; and (against the engine and the test bed's Docker) whole runs of `python -m
bench`: a tiny one, ours against docker with no change, and one with the watch scenario and
--baseline HEAD, after which no --watch process is left."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from bench.speed.run import rotated
from tests.bench_fixtures import _bench, _git


@pytest.mark.engine
def test_a_tiny_real_run_against_docker(engine_env: dict[str, str], tmp_path: Path) -> None:
    """One no-change sample of ours and of docker on hello world: the JSON has both samples
    and both images, of the same size to within 1%."""
    report = tmp_path / "bench.json"
    done = _bench(
        "--programs=helloworld",
        "--peers=docker",
        "--scenarios=no change",
        "--samples=1",
        "--no-breakdown",
        f"--json={report}",
        f"--markdown={tmp_path / 'bench.md'}",
        f"--work={tmp_path / 'work'}",
        env={**engine_env, "COLUMNS": "200"},
        timeout=600,
    )
    assert done.returncode == 0, done.stderr
    data = json.loads(report.read_text())
    assert sorted(s["side"] for s in data["samples"]) == ["docker", "ours (export)"]
    assert all(s["seconds"] > 0 for s in data["samples"])
    sizes = {s["side"]: s for s in data["sizes"]}
    assert set(sizes) == {"ours (export)", "docker"}
    ours, docker = sizes["ours (export)"]["uncompressed"], sizes["docker"]["uncompressed"]
    assert abs(ours - docker) / docker < 0.01, f"ours {ours} B, docker {docker} B"
    assert "no change" in (tmp_path / "bench.md").read_text()


def test_sides_rotate_so_that_each_goes_first_in_turn() -> None:
    sides = ["ours", "ours@1a2b3c4", "docker"]
    orders = [rotated(sides, i) for i in range(4)]
    assert [o[0] for o in orders] == ["ours", "ours@1a2b3c4", "docker", "ours"]
    assert all(sorted(o) == sorted(sides) for o in orders)
    assert [rotated(["ours", "ko"], i) for i in range(2)] == [["ours", "ko"], ["ko", "ours"]]


@pytest.mark.engine
def test_a_real_run_with_the_watch_scenario_and_a_baseline(
    engine_env: dict[str, str], tmp_path: Path
) -> None:
    """Hello world against docker, no change and the watch scenario, 2 samples each, with
    --baseline HEAD: three sides in each, rotated; every watch sample a new image; the
    ours-vs-docker rows without the baseline; the watch processes gone afterwards."""
    report, work = tmp_path / "bench.json", tmp_path / "work"
    done = _bench(
        "--programs=helloworld",
        "--peers=docker",
        "--scenarios=no change,watch: one-line change",
        "--samples=2",
        "--no-breakdown",
        "--baseline=HEAD",
        f"--json={report}",
        f"--markdown={tmp_path / 'bench.md'}",
        f"--work={work}",
        env={**engine_env, "COLUMNS": "200"},
        timeout=600,
    )
    assert done.returncode == 0, done.stderr
    data = json.loads(report.read_text())
    short = _git("rev-parse", "--short", "HEAD")
    assert data["baseline"]["short"] == short
    assert data["baseline"]["watch"] is True
    assert (work / "baseline" / short / "pipeline" / "__main__.py").is_file()
    by_scenario: dict[str, list[dict[str, Any]]] = {}
    for sample in data["samples"]:
        by_scenario.setdefault(sample["scenario"], []).append(sample)
    assert [s["side"] for s in by_scenario["no change"]] == [
        "ours (export)",
        f"ours@{short} (export)",
        "docker",
        f"ours@{short} (export)",
        "docker",
        "ours (export)",
    ]
    watch = by_scenario["watch: one-line change"]
    assert [s["side"] for s in watch] == [
        "ours (watch)",
        f"ours@{short} (watch)",
        "docker",
        f"ours@{short} (watch)",
        "docker",
        "ours (watch)",
    ]
    digests = [s["detail"]["digest"] for s in watch if "(watch)" in s["side"]]
    assert len(set(digests)) == 4, f"every watch sample builds a new image: {digests}"
    assert all(0 < s["seconds"] < 120 for s in watch)
    summary = {r["scenario"]: r for r in data["summary"]}
    assert summary["watch: one-line change"]["ours"]["n"] == 2
    assert summary["watch: one-line change"]["theirs"]["n"] == 2
    assert [(c["scenario"], c["before"]["n"], c["now"]["n"]) for c in data["before_after"]] == [
        ("no change", 2, 2),
        ("watch: one-line change", 2, 2),
    ]
    assert f"Before and after (ours@{short} vs ours, same run)" in done.stdout
    assert f"## Before and after (ours@{short} vs ours" in (tmp_path / "bench.md").read_text()
    assert _processes_naming(work) == [], "a --watch process outlived the bench"


def _processes_naming(path: Path) -> list[str]:
    """The command lines of the running processes that name `path`."""
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            words = cmdline.read_bytes().split(b"\0")
        except OSError:  # gone meanwhile
            continue
        if any(str(path).encode() in word for word in words):
            found.append(b" ".join(words).decode(errors="replace"))
    return found
