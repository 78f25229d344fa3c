#!/usr/bin/python3
"""The test bed's private modules, laid out for its module host (apache, basic auth over TLS):

- `proxy DIR MODULE_DIR VERSION`: MODULE_DIR's module as the GOPROXY protocol serves it under
  DIR (<path>/@v/list, VERSION.info, .mod, .zip);
- `git DIR MODULE_DIR VERSION`: MODULE_DIR's files committed to the bare repository DIR,
  tagged VERSION, for `git http-backend` (what GOPROXY=direct reads).

Both are the same bytes on every machine (fixed times, sorted entries), so the test program's
go.sum holds. The standard library and git only."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

TIME = "2024-01-01T00:00:00Z"


def _module_path(module_dir: Path) -> str:
    for line in (module_dir / "go.mod").read_text().splitlines():
        if line.startswith("module "):
            return line.split()[1]
    raise SystemExit(f"{module_dir}/go.mod names no module")


def _files(module_dir: Path) -> list[Path]:
    return sorted(p for p in module_dir.rglob("*") if p.is_file())


def proxy(root: Path, module_dir: Path, version: str) -> None:
    """The module's @v directory under `root` (written anew, then moved into place)."""
    path = _module_path(module_dir)
    target = root / path / "@v"
    target.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target) as scratch:
        work = Path(scratch)
        (work / "list").write_text(f"{version}\n")
        (work / f"{version}.info").write_text(json.dumps({"Version": version, "Time": TIME}))
        (work / f"{version}.mod").write_bytes((module_dir / "go.mod").read_bytes())
        with zipfile.ZipFile(work / f"{version}.zip", "w", zipfile.ZIP_DEFLATED) as archive:
            for file in _files(module_dir):
                name = f"{path}@{version}/{file.relative_to(module_dir).as_posix()}"
                archive.writestr(zipfile.ZipInfo(name, (2024, 1, 1, 0, 0, 0)), file.read_bytes())
        for made in work.iterdir():
            os.replace(made, target / made.name)


def git(repository: Path, module_dir: Path, version: str) -> None:
    """A bare repository at `repository` holding one commit of the module, tagged `version`."""
    env = {
        **os.environ,
        "GIT_AUTHOR_NAME": "pipeline-testbed", "GIT_AUTHOR_EMAIL": "testbed@invalid",
        "GIT_COMMITTER_NAME": "pipeline-testbed", "GIT_COMMITTER_EMAIL": "testbed@invalid",
        "GIT_AUTHOR_DATE": TIME, "GIT_COMMITTER_DATE": TIME,
    }  # fmt: skip

    def run(*args: str, cwd: Path) -> None:
        subprocess.run(["git", *args], cwd=cwd, env=env, check=True, capture_output=True)

    with tempfile.TemporaryDirectory() as scratch:
        work = Path(scratch) / "work"
        work.mkdir()
        for file in _files(module_dir):
            copy = work / file.relative_to(module_dir)
            copy.parent.mkdir(parents=True, exist_ok=True)
            copy.write_bytes(file.read_bytes())
        run("init", "-q", "-b", "main", cwd=work)
        run("add", ".", cwd=work)
        run("commit", "-q", "-m", f"{version}", cwd=work)
        run("tag", version, cwd=work)
        fresh = Path(f"{repository}.tmp")
        subprocess.run(["rm", "-rf", str(fresh)], check=True)
        run("clone", "-q", "--bare", str(work), str(fresh), cwd=work)
        run("update-server-info", cwd=fresh)
        subprocess.run(["rm", "-rf", str(repository)], check=True)
        os.replace(fresh, repository)


if __name__ == "__main__":
    if len(sys.argv) != 5 or sys.argv[1] not in ("proxy", "git"):
        raise SystemExit(f"usage: {sys.argv[0]} proxy|git DIR MODULE_DIR VERSION")
    kind, where, source, tag = sys.argv[1:]
    (proxy if kind == "proxy" else git)(Path(where), Path(source), tag)
