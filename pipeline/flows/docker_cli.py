"""The local Docker, through its CLI: load an image tarball and tag it."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

from pipeline.errors import PipelineError

_LOADED = re.compile(r"Loaded image(?: ID)?: (\S+)")


def docker_binary() -> str:
    """The docker client: $PIPELINE_DOCKER, else `docker` on PATH."""
    found = os.environ.get("PIPELINE_DOCKER") or shutil.which("docker")
    if not found:
        raise PipelineError("--load needs the docker CLI: install Docker or drop --load")
    return found


def load(tarball: Path, tag: str) -> str:
    """`docker load` the tarball, tag the image as `tag`, return the image ID."""
    docker = docker_binary()
    loaded = subprocess.run(
        [docker, "load", "--input", str(tarball)], capture_output=True, text=True, check=False
    )
    match = _LOADED.search(loaded.stdout)
    if loaded.returncode != 0 or match is None:
        reason = (loaded.stderr or loaded.stdout).strip().splitlines()
        raise PipelineError(
            f"docker load of {tarball} failed: {reason[-1] if reason else 'no output'}"
        )
    tagged = subprocess.run(
        [docker, "tag", match.group(1), tag], capture_output=True, text=True, check=False
    )
    if tagged.returncode != 0:
        raise PipelineError(f"docker tag {tag} failed: {tagged.stderr.strip()}")
    inspected = subprocess.run(
        [docker, "image", "inspect", "--format", "{{.Id}}", tag],
        capture_output=True,
        text=True,
        check=False,
    )
    return inspected.stdout.strip()
