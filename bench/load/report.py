"""What a load run measured (bench/load/run.py), as data (LoadResults), as rich tables on the
terminal, as JSON (every run of every pass, every CPU sample, the machine) and as Markdown.

The JSON document (schema_version 1, kind "load"):

    {"schema_version": 1, "kind": "load", "started": "2026-11-29T10:00:00+00:00",
     "seconds": 300.2, "command": "python -m bench load", "options": {...}, "machine": {...},
     "warm": "one untimed sequential pass of the same runs first ...", "goal": 1.3,
     "runs": [{"index": 1, "name": "load1-helloworld", "program": "helloworld",
               "variant": "multistage", "platforms": [], "publish": false}],
     "passes": [{"name": "warm-up" | "sequential" | "concurrent" | "fault",
                 "concurrent": true, "timed": true, "seconds": 20.1,
                 "cpu": {"busy_percent": 97.0, "samples": [[0.5, 100.0], ...]},
                 "runs": [{"index": 1, "start": 0.01, "seconds": 9.8, "returncode": 0,
                           "digest": "sha256:...", "cache": "warm",
                           "steps": {"test": 0.1, "build": 0.4, ...}, "error": null}]}],
     "summary": [{"pass", "runs", "failed", "wall", "sum", "p50", "p95", "max",
                  "cpu_busy_percent", "warm"}],
     "throughput": {"sequential_total", "concurrent_wall", "ratio", "goal", "met"} | null,
     "digests": [{"index", "alone", "concurrent", "fault", "equal"}],
     "breakdown": [{"step", "runs", "sequential", "concurrent", "ratio"}],
     "why": ["..."],
     "victim": null | {"description", "command", "started", "build_started", "killed",
                       "returncode", "build_done", "leftover"},
     "checks": [{"name", "passed", "enforced", "detail"}]}

Times are seconds; a run's `start` is counted from the start of its pass. `returncode` is null
for a run killed after its timeout. Percentiles are over every run of the pass, linear between
the closest ranks. `ratio` (throughput) = the sequential runs' summed wall times / the
concurrent pass's wall time: above 1, running them at once finished sooner. In "breakdown",
each run's wall time is split into the steps of its own --json and "other" (the rest: python
start, import dagger, connecting, closing), summed over the runs of the pass; ratio =
concurrent / sequential. A check that is not "enforced" (the throughput goal) is reported but
does not make the run fail.
"""

from __future__ import annotations

import json
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from rich.console import Console

from bench.shared import machine
from bench.shared.tables import markdown_table, seconds_cell, table
from pipeline.outputs import write_text

SCHEMA_VERSION = 1
GOAL = 1.3  # throughput of the concurrent pass against the same runs one after another
SATURATED = 90.0  # percent CPU busy from which the CPUs count as saturated
BUSY_BEFORE = 20.0  # percent CPU busy before the run from which the machine was not idle
OTHER = "other"
TEXT_COLUMNS = frozenset(
    {"pass", "program", "variant", "platforms", "publish", "step", "check", "result", "detail"}
)


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0 to 100, to a hundredth) of `values`, linear between the closest
    ranks: statistics.quantiles(method="inclusive"), as numpy's default has it; p0 is the
    least, p100 the greatest, p50 the median."""
    if not values:
        raise ValueError("no values")
    if not 0 <= q <= 100:
        raise ValueError(f"percentile {q} is not between 0 and 100")
    if q in (0, 100) or len(values) == 1:
        return min(values) if q < 100 else max(values)
    cuts = statistics.quantiles(values, n=10_000, method="inclusive")  # p0.01 to p99.99
    return cuts[round(q * 100) - 1]


def throughput_ratio(sequential_total: float, concurrent_wall: float) -> float:
    """How many times the work one after another took the time of the same work at once:
    above 1, at once was faster."""
    if concurrent_wall <= 0 or sequential_total < 0:
        raise ValueError(f"times must be positive: {sequential_total}, {concurrent_wall}")
    return sequential_total / concurrent_wall


@dataclass(frozen=True)
class Planned:
    """One of the N runs: what it builds, and how (the same in every pass)."""

    index: int  # 1-based
    name: str  # its --name: its image, its tarball, its JSON
    program: str  # helloworld | age (bench/shared/programs.py)
    variant: str  # multistage | builder
    platforms: tuple[str, ...] = ()  # empty: the engine's own
    publish: bool = False

    @property
    def recipe(self) -> str:
        """`age multistage, 2 platforms, --publish`"""
        extras = [f"{len(self.platforms)} platforms"] if len(self.platforms) > 1 else []
        extras += ["--publish"] if self.publish else []
        return ", ".join([f"{self.program} {self.variant}", *extras])


@dataclass(frozen=True)
class RunSample:
    """One run of one pass: its wall time, from its process's start to its exit, and what its
    --json said."""

    index: int
    start: float  # seconds after its pass began
    seconds: float
    returncode: int | None  # None: still running after the timeout, and killed
    digest: str | None = None
    cache: str | None = None  # "warm": go build came from the engine's cache; "cold": it ran
    steps: dict[str, float] = field(default_factory=dict)
    error: str | None = None  # its stderr's last lines (the runs are --quiet: errors only)

    @property
    def ok(self) -> bool:
        return self.returncode == 0 and self.digest is not None

    @property
    def end(self) -> float:
        return self.start + self.seconds

    def split(self) -> dict[str, float]:
        """Its wall time as its steps and the rest (`other`)."""
        return {**self.steps, OTHER: self.seconds - sum(self.steps.values())}


@dataclass(frozen=True)
class Pass:
    """The N runs once: one after another, or all at once."""

    name: str  # warm-up | sequential | concurrent | fault
    concurrent: bool
    timed: bool  # the warm-up is not
    seconds: float  # from the first run's start to the last one's exit
    cpu_busy: float  # percent of all CPUs' time, over the pass
    cpu_samples: tuple[tuple[float, float], ...]  # (seconds into the pass, percent busy)
    runs: tuple[RunSample, ...]

    @property
    def failed(self) -> list[RunSample]:
        return [r for r in self.runs if not r.ok]

    def digest(self, index: int) -> str | None:
        return next((r.digest for r in self.runs if r.index == index), None)

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "concurrent": self.concurrent,
            "timed": self.timed,
            "seconds": round(self.seconds, 3),
            "cpu": {"busy_percent": round(self.cpu_busy, 1), "samples": self.cpu_samples},
            "runs": [asdict(r) for r in self.runs],
        }


@dataclass(frozen=True)
class Victim:
    """The client SIGKILLed in the fault pass, while the others ran."""

    description: str
    command: str
    started: float  # seconds after the pass began
    build_started: float | None  # when its `build ...` progress line came; None: never
    killed: float | None  # when the SIGKILL was sent; None: never (it ended before its build)
    returncode: int | None
    build_done: bool  # its build step ended before the kill: then it was not mid-build
    leftover: tuple[str, ...]  # processes of its group still alive after the wait
    compiling: int = 0  # its go build processes seen at the kill (an engine on this machine)
    build_gone: float | None = None  # seconds from the kill until they were gone
    said: str = ""  # the last line of its stderr


@dataclass(frozen=True)
class Check:
    name: str
    passed: bool
    detail: str
    enforced: bool = True  # a failed enforced check makes the load run exit 1


@dataclass(frozen=True)
class PassStats:
    name: str
    runs: int
    failed: int
    wall: float
    total: float  # the runs' wall times, summed
    p50: float
    p95: float
    max: float
    cpu_busy: float
    warm: int  # runs whose go build came from the cache


@dataclass(frozen=True)
class Throughput:
    sequential_total: float
    concurrent_wall: float
    ratio: float
    goal: float

    @property
    def met(self) -> bool:
        return self.ratio >= self.goal


@dataclass(frozen=True)
class StepRow:
    step: str
    runs: int  # how many runs of the pass had this step
    sequential: float  # summed over the runs
    concurrent: float

    @property
    def ratio(self) -> float | None:
        return self.concurrent / self.sequential if self.sequential > 0 else None


def stats(one: Pass) -> PassStats:
    walls = [r.seconds for r in one.runs] or [0.0]
    return PassStats(
        name=one.name,
        runs=len(one.runs),
        failed=len(one.failed),
        wall=one.seconds,
        total=sum(walls),
        p50=percentile(walls, 50),
        p95=percentile(walls, 95),
        max=max(walls),
        cpu_busy=one.cpu_busy,
        warm=sum(1 for r in one.runs if r.cache == "warm"),
    )


def _compiling(victim: Victim) -> str:
    """What the engine's side of the killed build did, where it could be seen."""
    if not victim.compiling:
        return "no go build of it seen on this machine (a remote engine, or not yet compiling)"
    gone = (
        f"gone {victim.build_gone:.1f}s after the kill"
        if victim.build_gone is not None
        else "still running when the watch ended"
    )
    return f"the engine was compiling it ({victim.compiling} go build), {gone}"


def brief(text: str | None, limit: int = 160) -> str:
    """The first `limit` characters of an error, for a table cell (the JSON has it all)."""
    text = text or ""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _short(digest: str | None) -> str:
    return digest.removeprefix("sha256:")[:12] if digest else "-"


@dataclass(frozen=True)
class LoadResults:
    started: str
    seconds: float
    command: str
    options: dict[str, Any]
    machine: dict[str, Any]
    warm: str  # what was warm when the timed passes ran, and how
    runs: tuple[Planned, ...]
    passes: tuple[Pass, ...]
    victim: Victim | None = None
    goal: float = GOAL

    def find(self, name: str) -> Pass | None:
        return next((p for p in self.passes if p.name == name), None)

    def summary(self) -> list[PassStats]:
        return [stats(p) for p in self.passes]

    def throughput(self) -> Throughput | None:
        alone, together = self.find("sequential"), self.find("concurrent")
        if alone is None or together is None or together.seconds <= 0:
            return None
        total = sum(r.seconds for r in alone.runs)
        return Throughput(
            total, together.seconds, throughput_ratio(total, together.seconds), self.goal
        )

    def digest_rows(self) -> list[tuple[Planned, str | None, str | None, str | None, bool]]:
        """Per run: its digest built alone (the sequential pass), at once, in the fault pass,
        and whether every one of those that ran equals the one built alone."""
        alone, together, fault = (self.find(n) for n in ("sequential", "concurrent", "fault"))
        rows = []
        for run in self.runs:
            first = alone.digest(run.index) if alone else None
            others = [p.digest(run.index) for p in (together, fault) if p is not None]
            equal = first is not None and all(d == first for d in others)
            rows.append(
                (
                    run,
                    first,
                    together.digest(run.index) if together else None,
                    fault.digest(run.index) if fault else None,
                    equal,
                )
            )
        return rows

    def breakdown(self) -> list[StepRow]:
        """Each step's time summed over the ok runs of the sequential and concurrent passes
        (each run's split: its steps and `other`), in the order the steps came."""
        alone, together = self.find("sequential"), self.find("concurrent")
        if alone is None or together is None:
            return []
        sums: dict[str, list[float]] = {}
        runs: dict[str, set[int]] = {}
        for column, one in enumerate((alone, together)):
            for run in one.runs:
                if not run.ok:
                    continue
                for step, seconds in run.split().items():
                    sums.setdefault(step, [0.0, 0.0])[column] += seconds
                    runs.setdefault(step, set()).add(run.index)
        order = [s for s in sums if s != OTHER] + [OTHER]
        return [StepRow(s, len(runs[s]), *sums[s]) for s in order if s in sums]

    def why(self) -> list[str]:
        """Why the concurrent pass fell short of the goal (empty if it did not): how busy the
        CPUs were, and the steps that grew the most when the runs shared the machine."""
        speed = self.throughput()
        alone, together = self.find("sequential"), self.find("concurrent")
        if speed is None or speed.met or alone is None or together is None:
            return []
        cpus = self.machine.get("cpu_count") or "?"
        saturated = together.cpu_busy >= SATURATED
        before = self.machine.get("cpu_busy_before")
        lines = (
            [
                f"the machine was {before:.0f}% busy before the load run began (work of others "
                "on it): the runs shared the CPUs with it in both passes"
            ]
            if isinstance(before, int | float) and before >= BUSY_BEFORE
            else []
        )
        lines += [
            f"CPU busy (all {cpus} CPUs, /proc/stat): {alone.cpu_busy:.0f}% one at a time, "
            f"{together.cpu_busy:.0f}% at once"
            + (
                ": the CPUs were saturated at once, so running more at the same time could "
                "only share them; one at a time already kept "
                f"{alone.cpu_busy / 100 * (cpus if isinstance(cpus, int) else 1):.1f} "
                "CPUs busy on average"
                if saturated
                else ": not saturated, so the runs waited on something else than CPU "
                "(the engine's own locks, the registry, disk)"
            ),
        ]
        grown = sorted(self.breakdown(), key=lambda r: r.concurrent - r.sequential, reverse=True)
        parts = [
            f"{r.step} {r.sequential:.1f}s → {r.concurrent:.1f}s"
            + (f" ({r.ratio:.1f}x)" if r.ratio is not None else "")
            for r in grown[:3]
            if r.concurrent > r.sequential
        ]
        if parts:
            lines.append(
                "the steps that grew most at once (summed over the runs): " + ", ".join(parts)
            )
        return lines

    def checks(self) -> list[Check]:
        """The goal (0 failures, every digest that of the run built alone, the throughput)
        and, after a fault pass, the fault checks."""
        found: list[Check] = []
        timed = [p for p in self.passes if p.timed and p.name != "fault"]
        failed = {p.name: len(p.failed) for p in timed}
        first = next(
            (f"; {p.name} run {r.index}: {brief(r.error)}" for p in timed for r in p.failed), ""
        )
        found.append(
            Check(
                "0 failures",
                not any(failed.values()),
                ", ".join(f"{name}: {n} of {len(self.runs)} failed" for name, n in failed.items())
                + first,
            )
        )
        cold = {p.name: sum(1 for r in p.runs if r.cache != "warm") for p in timed}
        found.append(
            Check(
                "both timed passes warm",
                not any(cold.values()),
                ", ".join(
                    f"{name}: go build from the cache in {len(self.runs) - n} of {len(self.runs)}"
                    for name, n in cold.items()
                ),
                enforced=False,
            )
        )
        alone, together = self.find("sequential"), self.find("concurrent")
        if alone is not None and together is not None:
            found.append(self._digests_check(together, alone, "every digest that of its run alone"))
        speed = self.throughput()
        if speed is not None:
            found.append(
                Check(
                    f"throughput at least {speed.goal}x sequential",
                    speed.met,
                    f"{speed.ratio:.2f}x: {speed.sequential_total:.1f}s one after another, "
                    f"{speed.concurrent_wall:.1f}s at once",
                    enforced=False,
                )
            )
        fault = self.find("fault")
        if fault is not None and self.victim is not None and alone is not None:
            found += self._fault_checks(fault, alone, self.victim)
        return found

    def _digests_check(self, one: Pass, alone: Pass, name: str) -> Check:
        wrong = [
            f"run {r.index}: {_short(r.digest)}, alone {_short(alone.digest(r.index))}"
            for r in one.runs
            if r.ok and r.digest != alone.digest(r.index)
        ]
        equal = sum(1 for r in one.runs if r.ok and r.digest == alone.digest(r.index))
        return Check(
            name,
            not wrong and equal == len(self.runs),
            f"{equal} of {len(self.runs)} equal" + (f"; {'; '.join(wrong)}" if wrong else ""),
        )

    def _fault_checks(self, fault: Pass, alone: Pass, victim: Victim) -> list[Check]:
        mid_build = (
            victim.killed is not None
            and victim.build_started is not None
            and not victim.build_done
            and victim.returncode == -9
        )
        running = (
            sum(1 for r in fault.runs if r.end > victim.killed) if victim.killed is not None else 0
        )
        return [
            Check(
                "fault: a client SIGKILLed mid-build",
                mid_build,
                (
                    f"killed {victim.killed - (victim.build_started or 0):.2f}s into its build "
                    f"step, {victim.killed:.1f}s into the pass, exit {victim.returncode}; "
                    + _compiling(victim)
                    if victim.killed is not None
                    else f"never killed: it exited {victim.returncode} before its build step "
                    f"({brief(victim.said)})"
                )
                + ("; its build had already ended" if victim.build_done else ""),
            ),
            Check(
                "fault: the others were running when it died",
                running > 0,
                f"{running} of {len(fault.runs)} still running"
                if victim.killed is not None
                else "it was never killed",
            ),
            Check(
                "fault: the others, 0 failures",
                not fault.failed,
                f"{len(fault.failed)} of {len(fault.runs)} failed"
                + "".join(f"; run {r.index}: {brief(r.error)}" for r in fault.failed),
            ),
            self._digests_check(fault, alone, "fault: the others, digests those of runs alone"),
            Check(
                "fault: the killed client left no process behind",
                not victim.leftover,
                "; ".join(victim.leftover) or "its process group is empty",
            ),
        ]

    def passed(self) -> bool:
        """Every enforced check passed."""
        return all(c.passed for c in self.checks() if c.enforced)

    def to_json(self) -> dict[str, Any]:
        speed = self.throughput()
        return {
            "schema_version": SCHEMA_VERSION,
            "kind": "load",
            "started": self.started,
            "seconds": round(self.seconds, 1),
            "command": self.command,
            "options": self.options,
            "machine": self.machine,
            "warm": self.warm,
            "goal": self.goal,
            "runs": [asdict(r) for r in self.runs],
            "passes": [p.to_json() for p in self.passes],
            "summary": [
                _fields(s, {"name": "pass", "total": "sum", "cpu_busy": "cpu_busy_percent"})
                for s in self.summary()
            ],
            "throughput": _fields(speed, met=speed.met) if speed else None,
            "digests": [
                {"index": r.index, "alone": a, "concurrent": c, "fault": f, "equal": e}
                for r, a, c, f, e in self.digest_rows()
            ],
            "breakdown": [
                _fields(r, ratio=None if r.ratio is None else round(r.ratio, 3))
                for r in self.breakdown()
            ],
            "why": self.why(),
            "victim": asdict(self.victim) if self.victim else None,
            "checks": [asdict(c) for c in self.checks()],
        }


def _fields(row: Any, keys: Mapping[str, str] | None = None, **extra: object) -> dict[str, Any]:
    """A dataclass's fields as JSON, in order: times to the millisecond, a CPU share to a
    tenth of a percent, renamed by `keys`; then `extra`."""
    out: dict[str, Any] = {}
    for f in fields(row):
        value = getattr(row, f.name)
        if isinstance(value, float):
            value = round(value, 1 if f.name == "cpu_busy" else 3)
        out[(keys or {}).get(f.name, f.name)] = value
    return {**out, **extra}


# Each table as a header and rows of cells: the terminal and Markdown show the same cells.


def summary_cells(results: LoadResults) -> tuple[list[str], list[list[str]]]:
    header = ["pass", "runs", "failed", "wall", "sum of runs", "p50", "p95", "max", "CPU busy"]
    header.append("go build warm")
    rows = [
        [
            s.name + ("" if (p := results.find(s.name)) is None or p.timed else " (untimed)"),
            str(s.runs),
            str(s.failed),
            seconds_cell(s.wall),
            seconds_cell(s.total),
            seconds_cell(s.p50),
            seconds_cell(s.p95),
            seconds_cell(s.max),
            f"{s.cpu_busy:.0f}%",
            f"{s.warm}/{s.runs}",
        ]
        for s in results.summary()
    ]
    return header, rows


def run_cells(results: LoadResults) -> tuple[list[str], list[list[str]]]:
    header = ["run", "program", "variant", "platforms", "publish"]
    names = [p.name for p in results.passes if p.timed]
    header += [f"{name} wall" for name in names] + ["digest", "same digest"]
    walls = {
        (p.name, r.index): seconds_cell(r.seconds) + ("" if r.ok else " FAILED")
        for p in results.passes
        for r in p.runs
    }
    equal = {row[0].index: (row[1], row[4]) for row in results.digest_rows()}
    rows = [
        [
            str(run.index),
            run.program,
            run.variant,
            ", ".join(run.platforms) or "native",
            "yes" if run.publish else "-",
            *[walls.get((name, run.index), "-") for name in names],
            _short(equal[run.index][0]),
            "yes" if equal[run.index][1] else "NO",
        ]
        for run in results.runs
    ]
    return header, rows


def breakdown_cells(results: LoadResults) -> tuple[list[str], list[list[str]]]:
    header = ["step", "runs", "one at a time (sum)", "at once (sum)", "at once / one at a time"]
    rows = [
        [
            r.step,
            str(r.runs),
            seconds_cell(r.sequential),
            seconds_cell(r.concurrent),
            f"{r.ratio:.2f}x" if r.ratio is not None else "-",
        ]
        for r in results.breakdown()
    ]
    return header, rows


def check_cells(results: LoadResults) -> tuple[list[str], list[list[str]]]:
    rows = [
        [
            c.name,
            ("PASS" if c.passed else "FAIL") + ("" if c.enforced else " (not enforced)"),
            c.detail,
        ]
        for c in results.checks()
    ]
    return ["check", "result", "detail"], rows


def throughput_line(results: LoadResults) -> str:
    speed = results.throughput()
    if speed is None:
        return "throughput: no sequential and concurrent passes to compare"
    return (
        f"throughput: {speed.ratio:.2f}x sequential ({speed.sequential_total:.1f}s of runs one "
        f"after another / {speed.concurrent_wall:.1f}s for the same runs at once); goal "
        f"{speed.goal}x: {'met' if speed.met else 'not met'}"
    )


TITLE = "load: {n} pipeline runs, each its own process, against one engine"


def render(results: LoadResults, console: Console) -> None:
    """The tables: the passes, each run, where the time went, and the checks."""
    console.print(
        table(TITLE.format(n=len(results.runs)), *summary_cells(results), text=TEXT_COLUMNS)
    )
    console.print(throughput_line(results), highlight=False)
    console.print(f"warm: {results.warm}", highlight=False)
    console.print(table("each run", *run_cells(results), text=TEXT_COLUMNS))
    if results.breakdown():
        title = "where the time went: each run's steps (from its --json), summed"
        console.print(table(title, *breakdown_cells(results), text=TEXT_COLUMNS))
    for line in results.why():
        console.print(f"why: {line}", highlight=False)
    console.print(table("checks", *check_cells(results), text=TEXT_COLUMNS))
    console.print(f"load run took {results.seconds:.0f}s", highlight=False)


def markdown(results: LoadResults) -> str:
    m = results.machine
    parts = [
        "# Load: many builds, one engine",
        "",
        f"Made with `{results.command}` on {results.started}, in {results.seconds:.0f}s. "
        f"Machine: {machine.sentence(m)}; {machine.engine(m)} "
        f"reached at {m.get('engine_address', '?')}, {m.get('go', '?')}. "
        f"{machine.load_average(m)}; CPU busy in the {m.get('idle_seconds', '?')}s before "
        f"the first run: {m.get('cpu_busy_before', '?')}%.",
        "",
        str(results.options.get("description", "")),
        "",
        f"Warm: {results.warm}",
        "",
        f"## The passes ({len(results.runs)} runs each)",
        "",
        markdown_table(*summary_cells(results)),
        "",
        throughput_line(results) + ".",
        "",
        "## Each run (wall time of its process; digest from its --json)",
        "",
        markdown_table(*run_cells(results)),
        "",
    ]
    if results.breakdown():
        parts += [
            "## Where the time went (each run's wall time split into the steps of its "
            "--json and `other`: python start, `import dagger`, connecting, closing; summed "
            "over the runs)",
            "",
            markdown_table(*breakdown_cells(results)),
            "",
        ]
    why = results.why()
    if why:
        parts += [*[f"- why: {line}" for line in why], ""]
    if results.victim is not None:
        parts += [f"Fault: {results.victim.description}", ""]
    parts += ["## Checks", "", markdown_table(*check_cells(results)), ""]
    return "\n".join(parts)


def write(results: LoadResults, json_path: Path, markdown_path: Path | None) -> None:
    """The JSON (and the Markdown), each written whole."""
    write_text(json_path, json.dumps(results.to_json(), indent=2) + "\n")
    if markdown_path is not None:
        write_text(markdown_path, markdown(results))
