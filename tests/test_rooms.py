"""The rooms' contracts (pyproject.toml's importlinter, checked by tests/run): they hold for
pipeline/ as it is, and they break on a wrong import, so the check is one that can fail; and
no module of pipeline/ is over 300 lines."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
LINT = ROOT / ".venv" / "bin" / "lint-imports"
LAYERS = "Each room imports only the rooms below it"


def _lint(where: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(LINT), "--no-logo", "--no-cache"],
        cwd=where,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )


@pytest.fixture
def copy(tmp_path: Path) -> Path:
    """pipeline/ and pyproject.toml, copied where a wrong import can be tried."""
    skip = shutil.ignore_patterns("__pycache__")
    shutil.copytree(ROOT / "pipeline", tmp_path / "pipeline", ignore=skip)
    shutil.copy(ROOT / "pyproject.toml", tmp_path)
    return tmp_path


def test_the_rooms_keep_their_contracts(copy: Path) -> None:
    checked = _lint(copy)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "0 broken" in checked.stdout


@pytest.mark.parametrize(
    ("module", "wrong", "broken"),
    [
        ("image/oci.py", "from pipeline.flows import gocache", LAYERS),
        ("recipe/stages.py", "from pipeline.engine import session", LAYERS),
        ("flows/deliver.py", "import oras", "oras and requests only in the registry room"),
        (
            "registry/bases.py",
            "import dagger",
            "No Dagger in the image and registry rooms or the shared vocabulary",
        ),
        ("cli/launch.py", "import typer", "Typer only in the CLI's commands and options"),
        ("results.py", "import rich", "rich only in the CLI"),
    ],
)
def test_a_wrong_import_breaks_a_contract(copy: Path, module: str, wrong: str, broken: str) -> None:
    path = copy / "pipeline" / module
    path.write_text(path.read_text() + f"\n{wrong}  # the wrong import\n")
    checked = _lint(copy)
    assert checked.returncode == 1, checked.stdout + checked.stderr
    assert f"{broken} BROKEN" in checked.stdout


MOST_LINES = 300  # a module past this is two concerns in one room: split it


def test_no_module_is_longer_than_most_lines() -> None:
    modules = sorted((ROOT / "pipeline").rglob("*.py"))
    assert len(modules) > 50
    long = {
        str(m.relative_to(ROOT)): n
        for m in modules
        if (n := len(m.read_text().splitlines())) > MOST_LINES
    }
    assert long == {}, f"over {MOST_LINES} lines: {long}"
