"""bench.fresh.run: the fresh-runner scenario's tables, from samples as the scenario records them
(the scenario itself restarts the test bed's engine: it runs as `python -m bench fresh`)."""

from __future__ import annotations

from typing import Any

from bench.fresh import run as fresh


def _results() -> dict[str, Any]:
    def samples(*seconds: float) -> list[dict[str, Any]]:
        return [{"seconds": s} for s in seconds]

    timings = {
        "ours (cache)": samples(9.0, 11.0, 10.0),
        "ours (cache, small Go image)": samples(5.0, 4.0, 6.0),
        "ours (no cache)": samples(40.0, 42.0, 41.0),
        "docker": samples(30.0, 20.0, 25.0),
        "ko": samples(12.0, 13.0, 14.0),
    }
    return {
        "date": "2026-11-29T12:00:00+00:00",
        "commits": 3,
        "programs": {"age": {"timings": timings, "artifact_sizes": [20e6, 21e6, 19e6]}},
    }


def test_the_table_holds_medians_and_ratios_against_ours_with_the_cache() -> None:
    rows = {row[1]: row for row in fresh.table(_results())}
    assert rows["ours (cache)"][2:] == ["10.00s", "3", "1.00x", "0.50x"]
    assert rows["ours (cache, small Go image)"][2:] == ["5.00s", "3", "2.00x", "1.00x"]
    assert rows["ours (no cache)"][2:] == ["41.00s", "3", "0.24x", "0.12x"]
    assert rows["docker"][2:] == ["25.00s", "3", "0.40x", "0.20x"]
    assert rows["ko"][4:] == ["0.77x", "0.38x"]


def test_a_side_not_run_has_no_ratio_against_it() -> None:
    results = _results()
    del results["programs"]["age"]["timings"]["ours (cache, small Go image)"]
    rows = {row[1]: row for row in fresh.table(results)}
    assert rows["docker"][4:] == ["0.40x", "-"]
    assert "ours (cache, small Go image)" not in rows


def test_the_markdown_lists_every_commit_and_the_last_to_first_ratio() -> None:
    text = fresh.markdown(_results(), "python -m bench fresh", "2 CPUs")
    assert "| age | 20.00, 21.00, 19.00 | 0.950x |" in text
    assert "python -m bench fresh" in text
    assert "| age | docker | 25.00s | 3 | 0.40x | 0.20x |" in text
