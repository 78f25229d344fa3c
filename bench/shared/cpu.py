"""How busy the machine's CPUs were while something ran, from /proc/stat: every CPU of the
machine (the engine, the clients and whatever else runs), not only the bench's own processes.

busy = user + nice + system + irq + softirq + steal; total = busy + idle + iowait. A Sampler
reads the first (all-CPU) line of /proc/stat every INTERVAL seconds in a thread of its own,
and keeps each interval's busy share; its average is the whole span's (first reading to last),
not the mean of the intervals.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

STAT = Path("/proc/stat")
INTERVAL = 0.5
IDLE_FIELDS = (3, 4)  # idle, iowait; the fields after steal (guest) are counted in user/nice


@dataclass(frozen=True)
class Times:
    """The CPU time (in clock ticks) spent busy and in all, since boot."""

    busy: int
    total: int


def parse(text: str) -> Times:
    """The all-CPU `cpu ...` line of a /proc/stat text."""
    for line in text.splitlines():
        fields = line.split()
        if fields and fields[0] == "cpu":
            ticks = [int(f) for f in fields[1:9]]  # user .. steal
            idle = sum(ticks[i] for i in IDLE_FIELDS)
            return Times(busy=sum(ticks) - idle, total=sum(ticks))
    raise ValueError("no `cpu` line in /proc/stat")


def busy_percent(before: Times, after: Times) -> float:
    """The share of CPU time spent busy between two readings, in percent (0 if no time
    passed)."""
    total = after.total - before.total
    return 100.0 * (after.busy - before.busy) / total if total > 0 else 0.0


def read(path: Path = STAT) -> Times:
    return parse(path.read_text())


class Sampler:
    """`with Sampler() as cpu: ...`: /proc/stat read every `interval` seconds while the block
    runs; then `cpu.average` (percent busy over the block) and `cpu.samples` ((seconds since
    the start, percent busy over the interval that ended then), one per interval)."""

    def __init__(self, interval: float = INTERVAL, path: Path = STAT) -> None:
        self.interval = interval
        self.path = path
        self.samples: list[tuple[float, float]] = []
        self.average = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, name="cpu-sampler", daemon=True)
        self._first = Times(0, 0)
        self._start = 0.0

    def _sample(self) -> None:
        last = self._first
        while not self._stop.wait(self.interval):
            now = read(self.path)
            self.samples.append(
                (round(time.perf_counter() - self._start, 2), round(busy_percent(last, now), 1))
            )
            last = now

    def __enter__(self) -> Sampler:
        self._start = time.perf_counter()
        self._first = read(self.path)
        self._thread.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._stop.set()
        self._thread.join()
        self.average = busy_percent(self._first, read(self.path))
