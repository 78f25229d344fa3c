"""The scenarios: the state of the source tree and of a side's caches before each sample.

- `cold`: the side's build caches emptied (base images kept), then a new edit built.
- `no change`: the same tree built again.
- `one-line change`: a line added to a source file of the main package.
- `test-file change`: a line added to a test file: nothing the binary needs.
- `watch: one-line change`: the one-line change again, but ours is a long-lived
  `--watch` process that rebuilds it (bench/speed/watch.py), timed from the edit to its result; the
  peer builds it one-shot exactly as in `one-line change`. Against docker only: the comparison
  with ko skips it.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from enum import StrEnum
from pathlib import Path
from typing import Any

from bench.shared.programs import Program, edited
from bench.shared.sides import Side


class Scenario(StrEnum):
    COLD = "cold"  # both sides' build caches emptied; base images present
    NO_CHANGE = "no change"  # the same tree built again
    ONE_LINE = "one-line change"  # a line added to a source file of the main package
    TEST_FILE = "test-file change"  # a line added to a test file: nothing the binary needs
    WATCH = "watch: one-line change"  # the same edit, rebuilt by our running --watch


WATCH_PEERS = ("docker",)


def for_peer(peer: str, scenarios: Sequence[Scenario]) -> list[Scenario]:
    """The scenarios of the comparison with `peer`: the watch scenario only against docker."""
    return [s for s in scenarios if s is not Scenario.WATCH or peer in WATCH_PEERS]


@contextmanager
def prepared(
    scenario: Scenario, side: Side, program: Program, source: Path, nonce: str
) -> Iterator[dict[str, Any]]:
    """Put the tree and the side's caches in the scenario's state for one sample of a one-shot
    `side`; undo any edit afterwards. Yields what was done (the cold start's own timings).

    Each edit carries a fresh nonce, so every sample of every side sees a tree it has never
    built. Cold samples get one too: nothing built before, by anyone on the engine, can
    answer them. (Our side of the watch scenario makes its own edit: bench/speed/watch.py.)
    """
    if scenario is Scenario.COLD:
        done = side.empty_caches()
        with edited(source / program.source_file, f"cold {nonce}"):
            yield done
    elif scenario in (Scenario.ONE_LINE, Scenario.WATCH):
        with edited(source / program.source_file, nonce):
            yield {}
    elif scenario is Scenario.TEST_FILE:
        with edited(source / program.test_file, nonce):
            yield {}
    else:
        yield {}
