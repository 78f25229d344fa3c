"""pyproject.toml: `pip install .` gives a working `pipeline` command with every module of the
package in it (subpackages included), in a virtual environment of its own."""

from __future__ import annotations

import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

from tests.conftest import ROOT


def _run(*command: str | Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [str(c) for c in command], cwd=cwd, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return done


def test_the_wheel_holds_every_module_and_its_command_runs(tmp_path: Path) -> None:
    # Built from a copy: a build writes build/ and *.egg-info beside pyproject.toml.
    source = tmp_path / "source"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    shutil.copytree(ROOT / "pipeline", source / "pipeline",
                    ignore=shutil.ignore_patterns("__pycache__"))  # fmt: skip
    wheels = tmp_path / "wheels"
    pip = (sys.executable, "-m", "pip", "--disable-pip-version-check")
    _run(*pip, "wheel", "--no-deps", "--no-build-isolation", "-w", wheels, source, cwd=tmp_path)
    (wheel,) = wheels.glob("pipeline-*.whl")
    held = set(zipfile.ZipFile(wheel).namelist())
    modules = {str(p.relative_to(ROOT)) for p in (ROOT / "pipeline").rglob("*.py")}
    assert modules - held == set(), "modules left out of the wheel"

    # A fresh environment: the dependencies are this one's (a .pth file), the package only
    # what the wheel installs.
    venv = tmp_path / "venv"
    _run(sys.executable, "-m", "venv", "--without-pip", venv, cwd=tmp_path)
    python = venv / "bin" / "python"
    site = Path(_run(python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])",
                     cwd=tmp_path).stdout.strip())  # fmt: skip
    (site / "dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    _run(*pip, "--python", python, "install", "--no-deps", "--no-index", wheel, cwd=tmp_path)
    imported = _run(python, "-c", "import pipeline; print(pipeline.__file__)", cwd=tmp_path)
    assert Path(imported.stdout.strip()).is_relative_to(venv), imported.stdout
    for args in ((), ("multistage",)):
        helped = _run(venv / "bin" / "pipeline", *args, "--help", cwd=tmp_path)
        assert "Usage: pipeline" in helped.stdout
    assert "--cache-from" in helped.stdout
