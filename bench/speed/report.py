"""What a bench run measured, as data (Results), as rich tables on the terminal, as JSON (every
raw sample, the machine) and as Markdown.

The JSON document (schema_version 1):

    {"schema_version": 1, "started": "2026-11-28T04:00:00+00:00", "seconds": 600.1,
     "command": "python -m bench ...", "options": {...}, "machine": {...},
     "programs": [{"name": "age", "origin": "filippo.io/age@v1.3.2", "package": "./cmd/age",
                   "floor": 4640930}],
     "samples": [{"program": "age", "peer": "docker", "scenario": "one-line change",
                  "side": "ours (export)", "index": 0, "seconds": 4.2, "detail": {...}}],
     "summary": [{"program", "peer", "scenario", "ours": {"median", "n"},
                  "theirs": {"median", "n"}, "ratio"}],
     "sizes": [{"program", "side", "ref", "uncompressed", "compressed", "layers", "floor"}],
     "breakdowns": [{"program", "command", "total", "parts": [{"name", "seconds", "how"}]}],
     "baseline": null | {"ref": "HEAD~3", "commit": "<40 hex>", "short": "1a2b3c4",
                         "side_prefix": "ours@1a2b3c4", "watch": true},
     "before_after": [{"program", "peer", "scenario", "before": {"median", "n"},
                       "now": {"median", "n"}, "ratio", "note"}]}

Sides: `ours (export)`, `ours (publish)` and `ours (watch)` are the current pipeline; `docker`
and `ko` the peers; with --baseline, `ours@<short> (export|publish|watch)` are the pipeline as
committed at that revision. "summary" compares the current ours with the peer only, the
baseline never; ratio = ours / the peer's: below 1 ours is faster (or smaller).
"baseline" (null without --baseline) says which revision the baseline sides ran, and whether
it took part in the watch scenario (a revision without --watch does not); "before_after" (empty
without it) compares, per program, comparison and scenario, the baseline's median with the
current one's: ratio = now / before, below 1 the current pipeline is faster. Both keys came
after schema_version 1 was set; a document without them reads back as a run without baseline.
"""

from __future__ import annotations

import json
import statistics
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console

from bench.shared import machine
from bench.shared.tables import markdown_table, seconds_cell, table
from pipeline.outputs import write_text
from pipeline.results import human_size

SCHEMA_VERSION = 1
OURS_PREFIX = "ours ("  # the current pipeline's sides: ours (export), ours (publish)...
BASELINE_PREFIX = "ours@"  # --baseline's: ours@1a2b3c4 (export)...


@dataclass(frozen=True)
class Sample:
    """One timed build of one side."""

    program: str
    peer: str  # the comparison it belongs to: "docker" or "ko"
    scenario: str
    side: str  # "ours (export)", "ours (publish)", "ours (watch)", "docker", "ko", "ours@..."
    index: int
    seconds: float
    detail: dict[str, Any] = field(default_factory=dict)

    @property
    def ours(self) -> bool:
        """A sample of the current pipeline (not of the baseline, not of the peer)."""
        return self.side.startswith(OURS_PREFIX)

    @property
    def baseline(self) -> bool:
        """A sample of the pipeline at --baseline's revision."""
        return self.side.startswith(BASELINE_PREFIX)

    @property
    def held(self) -> int:
        """Bytes of the engine's cache that a cold start's prune could not release."""
        return int(self.detail.get("cold_start", {}).get("cache_bytes_left", 0))


@dataclass(frozen=True)
class Stat:
    median: float
    n: int


@dataclass(frozen=True)
class Row:
    """Medians of both sides of one comparison in one scenario, and their ratio."""

    program: str
    peer: str
    scenario: str
    ours: Stat
    theirs: Stat
    note: str = ""

    @property
    def ratio(self) -> float:
        return self.ours.median / self.theirs.median


@dataclass(frozen=True)
class Change:
    """Medians of the baseline's ours and of the current ours in one comparison and scenario."""

    program: str
    peer: str
    scenario: str
    before: Stat
    now: Stat
    note: str = ""

    @property
    def ratio(self) -> float:
        return self.now.median / self.before.median


def _held_note(held: int, whose: str) -> str:
    if not held:
        return ""
    return (
        f"{whose} not fully cold: another session held {human_size(held)} "
        "of the engine's cache through the prune"
    )


@dataclass(frozen=True)
class Size:
    """One side's image of one program, against the floor (the static binary alone)."""

    program: str
    side: str
    ref: str
    uncompressed: int
    compressed: int
    layers: int
    floor: int


@dataclass(frozen=True)
class Part:
    name: str
    seconds: float
    how: str


@dataclass(frozen=True)
class Breakdown:
    """Where the time of one of our one-shot runs goes."""

    program: str
    command: str
    total: float
    parts: tuple[Part, ...]
    detail: dict[str, Any] = field(default_factory=dict)  # the probe, the steps, --test


@dataclass(frozen=True)
class ProgramInfo:
    name: str
    origin: str
    package: str
    floor: int


@dataclass(frozen=True)
class Results:
    started: str
    seconds: float
    command: str
    options: dict[str, Any]
    machine: dict[str, Any]
    programs: tuple[ProgramInfo, ...]
    samples: tuple[Sample, ...]
    sizes: tuple[Size, ...] = ()
    breakdowns: tuple[Breakdown, ...] = ()
    baseline: dict[str, Any] | None = None  # --baseline: ref, commit, short, side_prefix, watch

    def _paired(
        self, side: Callable[[Sample], int | None], *, held_by: tuple[int, ...], whose: str
    ) -> list[tuple[str, str, str, Stat, Stat, str]]:
        """Per program, comparison and scenario, in the order they were run: the medians of
        two groups of samples (`side` says 0 or 1, or None to leave a sample out), where both
        have some, and a note when a cold start of a group in `held_by` was not fully cold."""
        groups: dict[tuple[str, str, str], tuple[list[float], list[float]]] = {}
        held: dict[tuple[str, str, str], int] = {}
        for s in self.samples:
            index = side(s)
            if index is None:
                continue
            key = (s.program, s.peer, s.scenario)
            groups.setdefault(key, ([], []))[index].append(s.seconds)
            if index in held_by:
                held[key] = max(held.get(key, 0), s.held)
        return [
            (
                *key,
                Stat(statistics.median(first), len(first)),
                Stat(statistics.median(second), len(second)),
                _held_note(held.get(key, 0), whose),
            )
            for key, (first, second) in groups.items()
            if first and second
        ]

    def rows(self) -> list[Row]:
        """One row per program, comparison and scenario, in the order they were run: the
        current ours against the peer (the baseline's samples take no part)."""
        return [
            Row(*paired)
            for paired in self._paired(
                lambda s: 0 if s.ours else None if s.baseline else 1, held_by=(0,), whose="ours"
            )
        ]

    def changes(self) -> list[Change]:
        """Before and after: the baseline's ours against the current ours, per program,
        comparison and scenario, in the order they were run."""
        return [
            Change(*paired)
            for paired in self._paired(
                lambda s: 0 if s.baseline else 1 if s.ours else None,
                held_by=(0, 1),
                whose="a side",
            )
        ]

    def to_json(self) -> dict[str, Any]:
        return {
            "schema_version": SCHEMA_VERSION,
            "started": self.started,
            "seconds": round(self.seconds, 1),
            "command": self.command,
            "options": self.options,
            "machine": self.machine,
            "programs": [asdict(p) for p in self.programs],
            "samples": [asdict(s) for s in self.samples],
            "summary": [
                {
                    "program": r.program,
                    "peer": r.peer,
                    "scenario": r.scenario,
                    "ours": asdict(r.ours),
                    "theirs": asdict(r.theirs),
                    "ratio": round(r.ratio, 3),
                    "note": r.note,
                }
                for r in self.rows()
            ],
            "sizes": [asdict(s) for s in self.sizes],
            "breakdowns": [asdict(b) for b in self.breakdowns],
            "baseline": self.baseline,
            "before_after": [
                {
                    "program": c.program,
                    "peer": c.peer,
                    "scenario": c.scenario,
                    "before": asdict(c.before),
                    "now": asdict(c.now),
                    "ratio": round(c.ratio, 3),
                    "note": c.note,
                }
                for c in self.changes()
            ],
        }


def from_json(data: dict[str, Any]) -> Results:
    """Results read back from their JSON (`to_json`)."""
    if data.get("schema_version") != SCHEMA_VERSION:
        raise ValueError(f"schema_version {data.get('schema_version')}, want {SCHEMA_VERSION}")
    return Results(
        started=data["started"],
        seconds=data["seconds"],
        command=data["command"],
        options=data["options"],
        machine=data["machine"],
        programs=tuple(ProgramInfo(**p) for p in data["programs"]),
        samples=tuple(Sample(**s) for s in data["samples"]),
        sizes=tuple(Size(**s) for s in data["sizes"]),
        breakdowns=tuple(
            Breakdown(
                program=b["program"],
                command=b["command"],
                total=b["total"],
                parts=tuple(Part(**p) for p in b["parts"]),
                detail=b.get("detail", {}),
            )
            for b in data["breakdowns"]
        ),
        baseline=data.get("baseline"),
    )


def _ratio(value: float) -> str:
    return f"{value:.2f}x"


# Each table as a header and rows of cells: the terminal and Markdown show the same cells.


def _median_cells(
    left: str, right: str, ratio: str, rows: list[tuple[str, str, str, Stat, Stat, str, float]]
) -> tuple[list[str], list[list[str]]]:
    """A table of two medians and their ratio: (program, peer, scenario, left, right, note,
    ratio) per row; a scenario with a note is starred."""
    header = ["program", "scenario", "peer", f"{left} (median)", "n", f"{right} (median)", "n"]
    cells = [
        [
            program,
            scenario + ("*" if note else ""),
            peer,
            seconds_cell(first.median),
            str(first.n),
            seconds_cell(second.median),
            str(second.n),
            _ratio(value),
        ]
        for program, peer, scenario, first, second, note, value in rows
    ]
    return [*header, ratio], cells


def speed_cells(results: Results) -> tuple[list[str], list[list[str]]]:
    rows = [
        (r.program, r.peer, r.scenario, r.ours, r.theirs, r.note, r.ratio) for r in results.rows()
    ]
    return _median_cells("ours", "peer", "ours/peer", rows)


def speed_notes(results: Results) -> list[str]:
    return [f"{r.scenario}* ({r.program} vs {r.peer}): {r.note}" for r in results.rows() if r.note]


SPEED_TITLE = "speed: medians (one-shot builds; ours (watch): the rebuild by a running --watch)"


def _baseline_label(results: Results) -> str:
    return str((results.baseline or {}).get("side_prefix", BASELINE_PREFIX + "?"))


def before_after_title(results: Results) -> str:
    return f"Before and after ({_baseline_label(results)} vs ours, same run)"


def before_after_cells(results: Results) -> tuple[list[str], list[list[str]]]:
    rows = [
        (c.program, c.peer, c.scenario, c.before, c.now, c.note, c.ratio) for c in results.changes()
    ]
    return _median_cells(_baseline_label(results), "ours", "now/before", rows)


def before_after_notes(results: Results) -> list[str]:
    return [
        f"{c.scenario}* ({c.program}, {c.peer} comparison): {c.note}"
        for c in results.changes()
        if c.note
    ]


def size_cells(results: Results) -> tuple[list[str], list[list[str]]]:
    header = ["program", "side", "uncompressed", "compressed", "layers", "floor", "vs floor"]
    rows = [
        [
            s.program,
            s.side,
            human_size(s.uncompressed),
            human_size(s.compressed),
            str(s.layers),
            human_size(s.floor),
            _ratio(s.uncompressed / s.floor),
        ]
        for s in results.sizes
    ]
    return header, rows


def size_ratios(results: Results) -> list[str]:
    """`age: ours 5.12MB vs docker 5.12MB (1.000x), vs ko ...` per program."""
    lines = []
    for program in dict.fromkeys(s.program for s in results.sizes):
        sizes = {s.side: s for s in results.sizes if s.program == program}
        ours = next((s for side, s in sizes.items() if side.startswith(OURS_PREFIX)), None)
        if ours is None:
            continue
        parts = [
            f"vs {side} {human_size(s.uncompressed)} ({ours.uncompressed / s.uncompressed:.3f}x "
            f"uncompressed, {ours.compressed / s.compressed:.3f}x compressed)"
            for side, s in sizes.items()
            if not side.startswith((OURS_PREFIX, BASELINE_PREFIX))
        ]
        lines.append(f"{program}: ours {human_size(ours.uncompressed)} " + ", ".join(parts))
    return lines


def breakdown_cells(breakdown: Breakdown) -> tuple[list[str], list[list[str]]]:
    header = ["part", "seconds", "share", "how it was measured"]
    rows = [
        [p.name, seconds_cell(p.seconds), f"{p.seconds / breakdown.total:.0%}", p.how]
        for p in breakdown.parts
    ]
    rows.append(["total (wall)", seconds_cell(breakdown.total), "100%", breakdown.command])
    return header, rows


def breakdown_notes(breakdown: Breakdown) -> list[str]:
    """What the defaults add, and what answering --help costs."""
    notes = []
    tested = breakdown.detail.get("with_test")
    if tested:
        notes.append(
            f"with --test (the default) on the same change: {seconds_cell(tested['wall'])} wall, "
            f"of which go vet + go test {seconds_cell(tested['steps'].get('test', 0.0))}"
        )
    if "pipeline_help_wall" in breakdown.detail:
        notes.append(
            f"`python -m pipeline --help`: {seconds_cell(breakdown.detail['pipeline_help_wall'])}"
        )
    return notes


def render(results: Results, console: Console) -> None:
    """The tables: speed (medians and ratios), before and after (with --baseline), sizes, and
    where our time goes."""
    console.print(table(SPEED_TITLE, *speed_cells(results)))
    for note in speed_notes(results):
        console.print(note, highlight=False)
    if results.baseline is not None:
        console.print(table(before_after_title(results), *before_after_cells(results)))
        for note in before_after_notes(results):
            console.print(note, highlight=False)
        console.print("now/before: below 1, the current pipeline is faster", highlight=False)
    if results.sizes:
        console.print(table("sizes: the image of each side", *size_cells(results)))
        for line in size_ratios(results):
            console.print(line, highlight=False)
    for breakdown in results.breakdowns:
        title = f"where our time goes: {breakdown.program}"
        console.print(table(title, *breakdown_cells(breakdown)))
        for note in breakdown_notes(breakdown):
            console.print(note, highlight=False)
    console.print(f"bench took {results.seconds:.0f}s", highlight=False)


def markdown(results: Results) -> str:
    m = results.machine
    parts = [
        "# Benchmark: ours against `docker build` and ko",
        "",
        f"Made with `{results.command}` on {results.started}, in {results.seconds:.0f}s. "
        f"Machine: {machine.sentence(m)}; docker {m.get('docker_server', '?')}, "
        f"ko {m.get('ko', '?')}, {machine.engine(m)}, {m.get('go', '?')}. "
        f"{machine.load_average(m)}.",
        "",
        "Programs: "
        + "; ".join(
            f"`{p.name}` ({p.origin}, main package `{p.package}`)" for p in results.programs
        )
        + ".",
        "",
        "Sides, run alternately (the order rotated between samples): `ours (export)` is "
        "`python -m pipeline multistage --no-test --no-run ... --output TAR`, one-shot, against "
        "`docker`, `docker build` (BuildKit) of bench/Dockerfile with cache mounts for the Go "
        "module and build caches, then `docker save`; `ours (publish)` is the same with "
        "`--publish` to the test bed's registry against `ko`, `ko build --bare --sbom=none` to "
        "the same registry. Same go, same flags, same bases. Scenarios: cold (the side's build "
        "caches emptied, base images kept), no change, a line added to a source file of the "
        "main package, a line added to a test file; every edit is new, and undone after its "
        "sample. In `watch: one-line change` (against docker only), `ours (watch)` is one "
        "`python -m pipeline multistage --watch` with the flags of `ours (export)`, started "
        "once per program (untimed up to its first build), timed from the edit to the end of "
        "its rebuild (its `watching` line); docker builds the same edit one-shot.",
        "",
        "## Speed (median wall time; ratio = ours / peer)",
        "",
        markdown_table(*speed_cells(results)),
        "",
        *[f"- {note}" for note in speed_notes(results)],
        "",
    ]
    parts += _before_after_section(results)
    if results.sizes:
        parts += [
            "## Sizes (from the registry each side pushed to; ours (export): its OCI tarball; "
            "floor = the binary alone)",
            "",
            markdown_table(*size_cells(results)),
            "",
            *[f"- {line}" for line in size_ratios(results)],
            "",
        ]
    for breakdown in results.breakdowns:
        parts += [
            f"## Where our time goes: {breakdown.program}",
            "",
            markdown_table(*breakdown_cells(breakdown)),
            "",
            *[f"- {note}" for note in breakdown_notes(breakdown)],
            "",
        ]
    return "\n".join(parts)


def _before_after_section(results: Results) -> list[str]:
    """--baseline's section of the Markdown (none without one)."""
    if results.baseline is None:
        return []
    b = results.baseline
    return [
        f"## {before_after_title(results)}",
        "",
        f"`{b.get('side_prefix')}` is pipeline/ as committed at `{b.get('ref')}` "
        f"({b.get('commit')}), run by the same interpreter as a third side of every "
        "comparison, in the same scenarios with the same number of samples"
        + ("" if b.get("watch", True) else " (except the watch scenario: it has no --watch)")
        + "; ratio = now / before: below 1, the current pipeline is faster.",
        "",
        markdown_table(*before_after_cells(results)),
        "",
        *[f"- {note}" for note in before_after_notes(results)],
        "",
    ]


def write(results: Results, json_path: Path, markdown_path: Path | None) -> None:
    """The JSON (and the Markdown), each written whole: to a temporary name, then renamed."""
    write_text(json_path, json.dumps(results.to_json(), indent=2) + "\n")
    if markdown_path is not None:
        write_text(markdown_path, markdown(results))
