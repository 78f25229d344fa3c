"""The CI workflow: actionlint passes, and it runs the README's command with the pinned CLI."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import pytest
import yaml

from pipeline.cli.checks import check_cache_ref
from pipeline.refs import parse_image_ref
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


def _outputs(step: dict[str, Any], **extra: str) -> dict[str, str]:
    """What the step's script writes to GITHUB_OUTPUT, for a repository with capitals."""
    with tempfile.NamedTemporaryFile("r") as output:
        env = {
            "PATH": os.environ["PATH"],
            "REGISTRY": "ghcr.io",
            "REPOSITORY": "Team-Go/Hello_App",
            "GITHUB_SHA": "0123abc",
            "GITHUB_OUTPUT": output.name,
            **extra,
        }
        done = subprocess.run(["bash", "-c", step["run"]], env=env, check=False)
        assert done.returncode == 0
        return dict(line.partition("=")[::2] for line in output.read().splitlines())


def test_the_image_reference_is_lowercased_as_registries_require() -> None:
    """github.repository keeps the owner's capitals (Team/App); a reference may not have any."""
    steps = yaml.safe_load(WORKFLOW.read_text())["jobs"]["multistage"]["steps"]
    step = next(s for s in steps if s.get("id") == "image")
    assert "${{ steps.image.outputs.ref }}" in WORKFLOW.read_text()
    outputs = _outputs(step)
    assert outputs["ref"] == "ghcr.io/team-go/hello_app:0123abc"
    assert parse_image_ref(outputs["ref"], option="--publish").path == "team-go/hello_app"
    assert check_cache_ref(outputs["cache"], option="--cache-to").path == "team-go/hello_app-cache"


def test_main_reads_and_writes_the_go_cache_and_pull_requests_only_read_it() -> None:
    """A cache is compiler input: only trusted builds (pushes to main) may write it."""
    workflow = yaml.safe_load(WORKFLOW.read_text())
    assert "pull_request" in workflow[True]  # YAML 1.1 reads the key `on` as True
    builds = {
        s["if"]: s["with"]["args"].split()
        for s in workflow["jobs"]["multistage"]["steps"]
        if "pipeline" in s.get("with", {}).get("args", "")
    }
    main = builds["github.event_name != 'pull_request'"]
    pull = builds["github.event_name == 'pull_request'"]
    assert {"--cache-from", "--cache-to", "--publish"} <= set(main)
    assert "--cache-from" in pull
    assert "--cache-to" not in pull
    assert "--publish" not in pull


def test_the_service_job_builds_from_its_config_under_the_commit_and_the_branch() -> None:
    """examples/service's two images, from pipeline.toml, each pushed once under two tags: the
    commit (in --publish, a template naming each image) and the branch, made a valid tag."""
    steps = yaml.safe_load(WORKFLOW.read_text())["jobs"]["service"]["steps"]
    main = next(s for s in steps if s.get("if") == "github.event_name != 'pull_request'")
    args = main["with"]["args"]
    assert "--source examples/service" in args
    assert "--publish ${{ steps.image.outputs.ref }}" in args
    assert "--tag ${{ steps.image.outputs.branch }}" in args
    step = next(s for s in steps if s.get("id") == "image")
    outputs = _outputs(step, BRANCH="feature/Stamp.v2")
    assert outputs["ref"] == "ghcr.io/team-go/hello_app/{{.Name}}:0123abc"
    assert outputs["branch"] == "feature-Stamp.v2"
    publish = outputs["ref"].replace("{{.Name}}", "api")
    assert parse_image_ref(publish, option="--publish").tag == "0123abc"


def test_main_attests_the_pushed_digest_keyless() -> None:
    """After a push to main, GitHub's own provenance step attests the digest the run pushed
    (from its --json), with the workflow's OIDC identity: the job may ask for that token."""
    job = yaml.safe_load(WORKFLOW.read_text())["jobs"]["multistage"]
    assert job["permissions"]["id-token"] == "write"
    assert job["permissions"]["attestations"] == "write"
    steps = job["steps"]
    attest = next(s for s in steps if "attest-build-provenance" in s.get("uses", ""))
    assert attest["if"] == "github.event_name != 'pull_request'"
    assert attest["with"]["subject-digest"] == "${{ steps.pushed.outputs.digest }}"
    assert attest["with"]["push-to-registry"] is True
    pushed = next(s for s in steps if s.get("id") == "pushed")
    with tempfile.TemporaryDirectory() as directory:
        report = Path(directory) / "build" / "multistage.json"
        report.parent.mkdir()
        report.write_text(json.dumps({"images": [{"digest": "sha256:" + "d" * 64}]}))
        with tempfile.NamedTemporaryFile("r") as output:
            env = {
                "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",  # its python
                "REF": "registry.acme.dev:5000/team-go/hello_app:0123abc",
                "GITHUB_OUTPUT": output.name,
            }
            done = subprocess.run(
                ["bash", "-c", pushed["run"]], env=env, cwd=directory, check=False
            )
            assert done.returncode == 0
            found = dict(line.partition("=")[::2] for line in output.read().splitlines())
    assert found == {
        "digest": "sha256:" + "d" * 64,
        "name": "registry.acme.dev:5000/team-go/hello_app",
    }
