"""bench/services/run.py: the three services' copy (a pipeline.toml of three images that the
pipeline reads), the medians and ratios against each peer with their goals, the table."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from bench.services.run import SERVICES, Sample, cells, prepare, summary
from pipeline.cli import commands
from pipeline.settings import Settings


def test_the_copy_has_three_mains_and_a_config_that_names_them(
    tmp_path: Path, captured: list[Settings]
) -> None:
    source = prepare(tmp_path)
    for service in SERVICES:
        main = (source / "cmd" / service / "main.go").read_text()
        assert "package main" in main
        assert "example.com/service/internal/version" in main
    result = CliRunner().invoke(commands.app, ["multistage", "--source", str(source)])
    assert result.exit_code == 0, result.stderr
    assert [(s.name, s.package) for s in captured] == [(s, f"./cmd/{s}") for s in SERVICES]


def test_ratios_are_of_medians_against_each_peer() -> None:
    found = [
        Sample("ours (export)", 2.0), Sample("ours (export)", 4.0), Sample("ours (export)", 3.0),
        Sample("docker", 6.0), Sample("docker", 6.0), Sample("docker", 9.0),
        Sample("ours (publish)", 3.0), Sample("ko", 1.5),
    ]  # fmt: skip
    got = summary(found)
    assert got["medians"]["ours (export)"] == 3.0
    assert got["ratios"]["docker"] == {
        "ours": "ours (export)",
        "ratio": 0.5,
        "goal": 1.0,
        "met": True,
    }
    assert got["ratios"]["ko"]["ratio"] == 2.0
    assert got["ratios"]["ko"]["met"] is False
    header, rows = cells(got)
    assert header[-2:] == ["ours/peer", "goal"]
    assert rows[0] == ["docker", "ours (export)", "3.00s", "6.00s", "0.50x", "≤ 1.0x (met)"]
    assert rows[1][-1] == "≤ 1.5x (not met)"
