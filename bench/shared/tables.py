"""The bench's tables, one way everywhere: a rich table of cells (text to the left, numbers to
the right), the same cells as Markdown, and a time as every table shows it."""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from rich.table import Table


def seconds_cell(value: float) -> str:
    """A time as every bench table shows it: 1.23s."""
    return f"{value:.2f}s"


TEXT_COLUMNS = frozenset({"program", "scenario", "peer", "side", "part"})


def table(
    title: str, header: list[str], rows: list[list[str]], *, text: Collection[str] = TEXT_COLUMNS
) -> Table:
    """A rich table of these cells: the columns named in `text` (and `how ...`) to the left,
    the others (numbers) to the right."""
    shown = Table(title=title, title_justify="left")
    for column in header:
        numeric = column not in text and not column.startswith("how")
        shown.add_column(column, justify="right" if numeric else "left")
    for row in rows:
        shown.add_row(*row)
    return shown


def markdown_table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def scenario_markdown(
    title: str, cells: tuple[list[str], list[list[str]]], results: dict[str, Any], command: str,
    machine: str,
) -> str:  # fmt: skip
    """A scenario's results as Markdown: its title, its table, and how they were made."""
    header, rows = cells
    return (
        f"# {title}\n\n"
        + markdown_table(header, rows)
        + f"\n\nMedians of {results['samples_per_side']} samples per side on {machine}, "
        f"{results['date']}. Made with `{command}`.\n"
    )
