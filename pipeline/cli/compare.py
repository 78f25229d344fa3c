"""The variants side by side: rows measured from the run reports, a one-line conclusion, the
budgets (read from pyproject.toml and --max-size, held to), and the table as rich, Markdown
and JSON.

The JSON document (`compare --json PATH`), schema_version 1:

    {"schema_version": 1, "kind": "compare", "floor_bytes": N | null,
     "conclusion": "multistage on busybox:1.35 is 188x smaller than naive",
     "rows": [{"key": "naive", "ref": "helloworld:naive", "role": "image" | "builder",
               "digest": "sha256:...", "base": "golang:1.26", "uncompressed": N,
               "compressed": N, "layers": N, "base_bytes": N, "own_bytes": N,
               "toolchain": bool, "source": bool, "shell": bool,
               "binary_bytes": N | null, "biggest_layer": "...", "biggest_layer_bytes": N,
               "times_smaller_than_naive": F, "times_floor": F | null,
               "build_seconds": F, "cache": "cold" | "warm", "printed": "..." | null}],
     "budgets": [{"key": "multistage", "max_bytes": N, "actual_bytes": N, "ok": bool}]}
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from rich.console import Console
from rich.table import Table

from pipeline.cli.checks import parse_budget
from pipeline.errors import UsageError
from pipeline.results import RunReport, human_size
from pipeline.settings import Settings, Variant

SCHEMA_VERSION = 1


@dataclass(frozen=True)
class Row:
    """One image, measured."""

    key: str
    ref: str
    role: str
    digest: str
    base: str
    uncompressed: int
    compressed: int
    layers: int
    base_bytes: int
    own_bytes: int
    toolchain: bool
    source: bool
    shell: bool
    binary_bytes: int | None
    biggest_layer: str
    biggest_layer_bytes: int
    times_smaller_than_naive: float
    times_floor: float | None
    build_seconds: float
    cache: str
    printed: str | None


@dataclass(frozen=True)
class Budget:
    key: str
    max_bytes: int
    actual_bytes: int | None

    @property
    def ok(self) -> bool:
        return self.actual_bytes is not None and self.actual_bytes <= self.max_bytes


@dataclass(frozen=True)
class Comparison:
    rows: tuple[Row, ...]
    floor_bytes: int | None
    conclusion: str
    budgets: tuple[Budget, ...] = ()

    def row(self, key: str) -> Row | None:
        return next((r for r in self.rows if r.key == key), None)

    def violations(self) -> list[str]:
        """One line per budget exceeded (or naming an image that was not built)."""
        lines = []
        for budget in self.budgets:
            row = self.row(budget.key)
            if row is None:
                known = ", ".join(r.key for r in self.rows)
                lines.append(f"budget {budget.key}: no such image (compare made: {known})")
            elif not budget.ok:
                lines.append(
                    f"{row.ref} is {human_size(row.uncompressed)} uncompressed, over its budget of "
                    f"{human_size(budget.max_bytes)}; biggest layer: {row.biggest_layer}, "
                    f"{human_size(row.biggest_layer_bytes)}"
                )
        return lines

    def to_json(self) -> dict[str, object]:
        return {
            "schema_version": SCHEMA_VERSION,
            "kind": "compare",
            "floor_bytes": self.floor_bytes,
            "conclusion": self.conclusion,
            "rows": [asdict(r) for r in self.rows],
            "budgets": [
                {"key": b.key, "max_bytes": b.max_bytes, "actual_bytes": b.actual_bytes, "ok": b.ok}
                for b in self.budgets
            ],
        }


def build_rows(reports: Sequence[tuple[str, RunReport]]) -> tuple[Row, ...]:
    """Rows from (key, report) pairs: each report's image, then its builder image if any."""
    rows: list[tuple[str, RunReport, int]] = []
    for key, report in reports:
        for index, image in enumerate(report.images):
            rows.append((key if image.role == "image" else f"{key}-build", report, index))
    naive = next(
        (r.images[i].uncompressed for k, r, i in rows if k == "naive"),
        max(r.images[i].uncompressed for _, r, i in rows),
    )
    floor = _floor(reports)
    result = []
    for key, report, index in rows:
        image = report.images[index]
        anatomy = image.anatomy
        assert anatomy is not None, "compare takes every image apart"
        base = (
            report.go_image
            if report.variant == "naive" or image.role != "image"
            else report.runtime_image
        )
        result.append(
            Row(
                key=key,
                ref=image.ref,
                role=image.role,
                digest=image.digest,
                base=base,
                uncompressed=image.uncompressed,
                compressed=image.compressed,
                layers=image.layers,
                base_bytes=anatomy.base_bytes,
                own_bytes=anatomy.own_bytes,
                toolchain=anatomy.toolchain,
                source=anatomy.source,
                shell=anatomy.shell,
                binary_bytes=anatomy.binary_bytes,
                biggest_layer=anatomy.biggest_layer,
                biggest_layer_bytes=anatomy.biggest_layer_bytes,
                times_smaller_than_naive=round(naive / image.uncompressed, 1),
                times_floor=round(image.uncompressed / floor, 2) if floor else None,
                build_seconds=round(report.seconds("build"), 3),
                cache=report.cache,
                printed=report.printed if image.role == "image" else None,
            )
        )
    return tuple(result)


def _floor(reports: Sequence[tuple[str, RunReport]]) -> int | None:
    """The program's own size: the static binary of the multistage image."""
    for key, report in reports:
        if key.startswith("multistage"):
            anatomy = report.images[0].anatomy
            if anatomy is not None and anatomy.binary_bytes:
                return anatomy.binary_bytes
    return None


def side_by_side(
    reports: Sequence[tuple[str, RunReport]], budgets: Mapping[str, int]
) -> Comparison:
    rows = build_rows(reports)
    floor = _floor(reports)
    headline = next((r for r in rows if r.key == "multistage"), rows[-1])
    naive = next((r for r in rows if r.key == "naive"), rows[0])
    conclusion = (
        f"{headline.key} on {headline.base} is {headline.times_smaller_than_naive:g}x smaller "
        f"than naive ({human_size(headline.uncompressed)} vs {human_size(naive.uncompressed)})"
    )
    checked = tuple(
        Budget(key, size, next((r.uncompressed for r in rows if r.key == key), None))
        for key, size in budgets.items()
    )
    return Comparison(rows, floor, conclusion, checked)


def _yes(flag: bool) -> str:
    return "yes" if flag else "-"


COLUMNS = (
    "image", "base", "uncompressed", "compressed", "layers", "base part", "our part",
    "toolchain", "source", "shell", "vs naive", "vs floor", "build", "printed",
)  # fmt: skip


NUMERIC = frozenset({"uncompressed", "compressed", "layers", "base part", "our part"})


def _cells(row: Row) -> tuple[str, ...]:
    return (
        row.ref,
        row.base,
        human_size(row.uncompressed),
        human_size(row.compressed),
        str(row.layers),
        human_size(row.base_bytes),
        human_size(row.own_bytes),
        _yes(row.toolchain),
        _yes(row.source),
        _yes(row.shell),
        f"{row.times_smaller_than_naive:g}x smaller" if row.times_smaller_than_naive > 1 else "-",
        f"{row.times_floor:g}x" if row.times_floor is not None else "-",
        f"{row.build_seconds:.2f}s {row.cache}",
        (row.printed or "").strip() or "-",
    )


def render(comparison: Comparison, console: Console) -> None:
    table = Table(title="compare: one program, every way of shipping it", title_justify="left")
    for column in COLUMNS:
        table.add_column(column, justify="right" if column in NUMERIC else "left")
    for row in comparison.rows:
        table.add_row(*_cells(row))
    console.print(table)
    if comparison.floor_bytes:
        console.print(f"floor (the binary alone): {human_size(comparison.floor_bytes)}")
    console.print(comparison.conclusion, style="bold")


def markdown(comparison: Comparison, command: str) -> str:
    lines = [
        "| " + " | ".join(COLUMNS) + " |",
        "|" + "|".join("---:" if c in NUMERIC else "---" for c in COLUMNS) + "|",
    ]
    for row in comparison.rows:
        cells = [c.replace("|", "\\|") for c in _cells(row)]
        cells[0] = f"`{cells[0]}`"
        lines.append("| " + " | ".join(cells) + " |")
    floor = (
        f" Floor (the binary alone): {human_size(comparison.floor_bytes)}."
        if comparison.floor_bytes
        else ""
    )
    lines += ["", f"{comparison.conclusion}.{floor} Made with `{command}`.", ""]
    return "\n".join(lines)


def read_budgets(pyproject: Path, flags: list[str] | None) -> dict[str, int]:
    """Budgets from [tool.pipeline.budgets] of pyproject.toml, then --max-size (which wins)."""
    budgets: dict[str, int] = {}
    if pyproject.is_file():
        try:
            table = tomllib.loads(pyproject.read_text()).get("tool", {}).get("pipeline", {})
        except tomllib.TOMLDecodeError as error:
            raise UsageError(f"{pyproject}: not valid TOML ({error})") from None
        section = table.get("budgets", {})
        if not isinstance(section, dict):
            raise UsageError(
                f"{pyproject}: [tool.pipeline.budgets] must be a table of IMAGE = SIZE"
            )
        for key, size in section.items():
            try:
                budgets.update([parse_budget(f"{key}={size}")])
            except UsageError:
                raise UsageError(
                    f"{pyproject}: [tool.pipeline.budgets] {key} = {size!r} is not a budget; "
                    'write e.g. multistage = "10MB"'
                ) from None
    for flag in flags or ():
        budgets.update([parse_budget(flag)])
    return budgets


def check_budget_keys(budgets: dict[str, int], jobs: tuple[Settings, ...]) -> None:
    """Every budget names an image compare makes (found before any engine work)."""
    known = [job.key for job in jobs] + [
        f"{job.key}-build" for job in jobs if job.variant is Variant.BUILDER
    ]
    for key in budgets:
        if key not in known:
            raise UsageError(
                f"budget for {key!r}: compare makes no such image ({', '.join(known)})"
            )
