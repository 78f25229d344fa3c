"""The scenarios: the state of the source tree and of a side's caches before each sample."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from enum import StrEnum
from pathlib import Path
from typing import Any

from bench.programs import Program, edited
from bench.sides import Side


class Scenario(StrEnum):
    COLD = "cold"  # both sides' build caches emptied; base images present
    NO_CHANGE = "no change"  # the same tree built again
    ONE_LINE = "one-line change"  # a line added to a source file of the main package
    TEST_FILE = "test-file change"  # a line added to a test file: nothing the binary needs


@contextmanager
def prepared(
    scenario: Scenario, side: Side, program: Program, source: Path, nonce: str
) -> Iterator[dict[str, Any]]:
    """Put the tree and the side's caches in the scenario's state for one sample of `side`;
    undo any edit afterwards. Yields what was done (the cold start's own timings).

    Each edit carries a fresh nonce, so every sample of every side sees a tree it has never
    built. Cold samples get one too: nothing built before, by anyone on the engine, can
    answer them.
    """
    if scenario is Scenario.COLD:
        done = side.empty_caches()
        with edited(source / program.source_file, f"cold {nonce}"):
            yield done
    elif scenario is Scenario.ONE_LINE:
        with edited(source / program.source_file, nonce):
            yield {}
    elif scenario is Scenario.TEST_FILE:
        with edited(source / program.test_file, nonce):
            yield {}
    else:
        yield {}
