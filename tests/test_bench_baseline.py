"""bench/shared/baseline.py: pipeline/ as committed at a revision, extracted byte for byte (and
again, afresh, over the first copy), is what `python -m pipeline` run from there imports; and
compile_ahead byte-compiles a copy of pipeline/ as `pip install` would."""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
from pathlib import Path

from bench.shared import baseline as baselines
from tests.bench_fixtures import ROOT, _git


def test_baseline_extracts_the_committed_pipeline_and_python_imports_it(tmp_path: Path) -> None:
    """git archive of pipeline/ at the revision, byte for byte; `python -m pipeline` run from
    there answers, from that copy (cwd first on sys.path: pipeline/ is not installed)."""
    chosen = baselines.resolve("HEAD~1", tmp_path)
    baselines.extract(chosen)
    copy = chosen.directory / "pipeline"
    committed = _git("ls-tree", "-r", "--name-only", chosen.commit, "pipeline").splitlines()
    assert sorted(str(p.relative_to(chosen.directory)) for p in copy.rglob("*.py")) == sorted(
        committed
    )
    assert (copy / "__init__.py").read_text() == subprocess.run(
        ["git", "-C", str(ROOT), "show", f"{chosen.commit}:pipeline/__init__.py"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    baselines.extract(chosen)  # again, over the first copy: afresh
    assert baselines.has_watch(chosen)
    where = subprocess.run(
        [
            sys.executable,
            "-c",
            "import pipeline; print(pipeline.__file__)",
        ],
        cwd=chosen.directory,
        capture_output=True,
        text=True,
        check=True,
    )
    assert Path(where.stdout.strip()) == copy / "__init__.py"


def test_the_pipeline_a_side_runs_is_byte_compiled_as_an_installed_one(tmp_path: Path) -> None:
    """compile_ahead leaves a current .pyc beside every module (what `pip install` does), so
    that a timed run compiles nothing, even where PYTHONDONTWRITEBYTECODE is set."""
    copy = tmp_path / "copy"
    shutil.copytree(
        ROOT / "pipeline", copy / "pipeline", ignore=shutil.ignore_patterns("__pycache__")
    )
    modules = sorted((copy / "pipeline").rglob("*.py"))
    assert not list((copy / "pipeline").rglob("*.pyc"))
    baselines.compile_ahead(copy)
    for module in modules:
        assert Path(importlib.util.cache_from_source(str(module))).is_file(), module
