"""bench/speed/scenarios.py: the watch scenario is in the default run and in --quick, and is a
scenario of the comparison with docker only (for_peer)."""

from __future__ import annotations

from bench.speed.scenarios import Scenario, for_peer
from tests.bench_fixtures import _resolve


def test_watch_is_a_scenario_of_the_docker_comparison_only() -> None:
    everything = list(Scenario)
    assert Scenario.WATCH in _resolve().scenarios
    assert Scenario.WATCH in _resolve(quick=True).scenarios
    assert for_peer("docker", everything) == everything
    assert Scenario.WATCH not in for_peer("ko", everything)
    assert for_peer("ko", [Scenario.WATCH]) == []
