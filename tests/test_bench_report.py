"""bench/speed/report.py: what a run measured, as Results: the ours-vs-peer rows (medians, ratios
ours over peer), the before-and-after rows of --baseline (now over before, and the baseline never in
the former), the JSON (every sample, read back, also from a file written before --baseline
existed), the Markdown tables and the terminal's."""

from __future__ import annotations

import io
import json
from dataclasses import replace
from pathlib import Path

import pytest
from rich.console import Console

from bench.speed.report import (
    Breakdown,
    Part,
    ProgramInfo,
    Results,
    Sample,
    Size,
    from_json,
    markdown,
    render,
)


def _results() -> Results:
    samples = (
        [
            Sample("helloworld", "docker", "one-line change", "ours (export)", i, s)
            for i, s in enumerate([1.0, 3.0, 2.0])
        ]
        + [
            Sample("helloworld", "docker", "one-line change", "docker", i, s)
            for i, s in enumerate([0.5, 0.5, 4.0])
        ]
        + [
            Sample(
                "helloworld",
                "docker",
                "cold",
                "ours (export)",
                0,
                8.0,
                {"cold_start": {"cache_bytes_left": 2_000_000}},
            ),
            Sample("helloworld", "docker", "cold", "docker", 0, 10.0, {"cold_start": {}}),
        ]
    )
    return Results(
        started="2026-11-28T04:00:00+00:00",
        seconds=12.5,
        command="python -m bench --quick",
        options={"samples": 3},
        machine={"cpu_count": 2, "memory_bytes": 2**34, "kernel": "6.1"},
        programs=(ProgramInfo("helloworld", "go-src/", ".", 1_585_314),),
        samples=tuple(samples),
        sizes=(
            Size("helloworld", "ours (export)", "t", 3_721_728, 1_747_066, 2, 1_585_314),
            Size("helloworld", "docker", "r", 3_722_752, 1_792_000, 2, 1_585_314),
        ),
        breakdowns=(
            Breakdown(
                "helloworld",
                "python -m pipeline multistage",
                4.0,
                (Part("import dagger", 1.0, "import"), Part("other", 3.0, "rest")),
                {"pipeline_help_wall": 0.25},
            ),
        ),
    )


def test_rows_take_medians_and_ratios_ours_over_peer() -> None:
    rows = {r.scenario: r for r in _results().rows()}
    one_line = rows["one-line change"]
    assert (one_line.ours.median, one_line.ours.n) == (2.0, 3)
    assert (one_line.theirs.median, one_line.theirs.n) == (0.5, 3)
    assert one_line.ratio == pytest.approx(4.0)
    assert one_line.note == ""
    assert rows["cold"].ratio == pytest.approx(0.8)
    assert "2MB" in rows["cold"].note, "a cold sample the prune could not empty must say so"


def test_json_keeps_every_sample_and_reads_back(tmp_path: Path) -> None:
    results = _results()
    data = json.loads(json.dumps(results.to_json()))
    assert len(data["samples"]) == len(results.samples)
    assert data["summary"][0]["ratio"] == 4.0
    assert from_json(data) == results


def test_markdown_has_the_tables() -> None:
    text = markdown(_results())
    assert "| helloworld | one-line change | docker | 2.00s | 3 | 0.50s | 3 | 4.00x |" in text
    assert "| helloworld | cold* | docker | 8.00s | 1 | 10.00s | 1 | 0.80x |" in text
    assert "| helloworld | docker | 3.72MB | 1.79MB | 2 | 1.59MB | 2.35x |" in text
    assert "| import dagger | 1.00s | 25% | import |" in text
    assert "`python -m pipeline --help`: 0.25s" in text


def _with_baseline() -> Results:
    """_results() plus the baseline's samples, slower in one-line change, faster when cold."""
    before = [
        Sample("helloworld", "docker", "one-line change", "ours@1a2b3c4 (export)", i, s)
        for i, s in enumerate([4.0, 6.0, 5.0])
    ] + [
        Sample(
            "helloworld",
            "docker",
            "cold",
            "ours@1a2b3c4 (export)",
            0,
            4.0,
            {"cold_start": {"cache_bytes_left": 0}},
        )
    ]
    results = _results()
    return replace(
        results,
        samples=(*results.samples, *before),
        baseline={
            "ref": "HEAD~3",
            "commit": "1a2b3c4" + "0" * 33,
            "short": "1a2b3c4",
            "side_prefix": "ours@1a2b3c4",
            "watch": True,
        },
    )


def test_the_baseline_is_never_ours_nor_the_peer_in_the_ours_vs_peer_rows() -> None:
    with_baseline = _with_baseline()
    assert with_baseline.rows() == _results().rows()
    baseline_sample = next(s for s in with_baseline.samples if s.side.startswith("ours@"))
    assert baseline_sample.baseline
    assert not baseline_sample.ours


def test_before_and_after_takes_medians_and_ratios_now_over_before() -> None:
    changes = {c.scenario: c for c in _with_baseline().changes()}
    one_line = changes["one-line change"]
    assert (one_line.before.median, one_line.before.n) == (5.0, 3)
    assert (one_line.now.median, one_line.now.n) == (2.0, 3)
    assert one_line.ratio == pytest.approx(0.4)
    assert changes["cold"].ratio == pytest.approx(2.0)
    assert "2MB" in changes["cold"].note
    assert _results().changes() == []


def test_before_and_after_is_in_the_json_and_the_markdown(tmp_path: Path) -> None:
    results = _with_baseline()
    data = json.loads(json.dumps(results.to_json()))
    assert data["schema_version"] == 1
    assert data["baseline"]["side_prefix"] == "ours@1a2b3c4"
    assert data["before_after"][0] == {
        "program": "helloworld",
        "peer": "docker",
        "scenario": "one-line change",
        "before": {"median": 5.0, "n": 3},
        "now": {"median": 2.0, "n": 3},
        "ratio": 0.4,
        "note": "",
    }
    assert [r["ratio"] for r in data["summary"]] == [4.0, 0.8]
    assert from_json(data) == results
    text = markdown(results)
    assert "## Before and after (ours@1a2b3c4 vs ours, same run)" in text
    assert "| program | scenario | peer | ours@1a2b3c4 (median) | n | ours (median) | n |" in text
    assert "| helloworld | one-line change | docker | 5.00s | 3 | 2.00s | 3 | 0.40x |" in text
    without = _results()
    assert "Before and after" not in markdown(without)
    old = without.to_json()
    del old["baseline"], old["before_after"]  # a file written before --baseline existed
    assert from_json(old) == without
    shown = io.StringIO()
    render(results, Console(file=shown, width=200))
    assert "Before and after (ours@1a2b3c4 vs ours, same run)" in shown.getvalue()
    assert "0.40x" in shown.getvalue()
