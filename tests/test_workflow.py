"""The CI workflow: actionlint passes, and it runs the README's command with the pinned CLI."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import ROOT

WORKFLOW = ROOT / ".github" / "workflows" / "images.yml"


def test_actionlint_passes() -> None:
    actionlint = shutil.which("actionlint") or str(ROOT / ".venv" / "bin" / "actionlint")
    if not Path(actionlint).is_file():
        pytest.fail("actionlint is not installed: run tests/setup")
    done = subprocess.run([actionlint, str(WORKFLOW)], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout + done.stderr


def test_workflow_pins_the_cli_of_dagger_json_and_runs_the_readme_command() -> None:
    text = WORKFLOW.read_text()
    engine = json.loads((ROOT / "dagger.json").read_text())["engineVersion"]
    assert f'version: "{engine.removeprefix("v")}"' in text
    assert "python -m pipeline multistage" in text
    assert "dagger run python -m pipeline multistage --publish" in (ROOT / "README.md").read_text()
    assert "secrets.REGISTRY_PASSWORD" in text
    assert "PIPELINE_REGISTRY_PASSWORD" in text
