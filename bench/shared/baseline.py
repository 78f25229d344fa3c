"""`--baseline REF`: an earlier version of our pipeline, measured in the same run as the current
one, so that each speed-up shows before and after on the same machine at the same time.

The baseline is pipeline/ as committed at REF, extracted with `git archive REF pipeline | tar -x`
into the work directory (bench/.work/baseline/<short-sha>/, git-ignored). Its side runs
`python -m pipeline` exactly as the current one does, with the same interpreter and the same
venv, but from that directory: `-m` puts the working directory first on sys.path, so the old
package is the one imported (pipeline/ is not installed in the venv). Every path the bench
passes (source, tarball, JSON report) is absolute, so the working directory changes nothing
else.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from bench.shared.programs import REPO, BenchError

TIMEOUT = 120.0


@dataclass(frozen=True)
class Baseline:
    """A revision of the pipeline, and where its pipeline/ is extracted."""

    ref: str  # as given on the command line
    commit: str
    short: str
    directory: Path  # holds pipeline/; the baseline's commands run from here

    @property
    def label(self) -> str:
        """The prefix of its sides' names: `ours@1a2b3c4`."""
        return f"ours@{self.short}"


def _git(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["git", "-C", str(REPO), *args],
        capture_output=True,
        text=True,
        check=False,
        timeout=TIMEOUT,
    )


def resolve(ref: str, work: Path) -> Baseline:
    """REF as a commit of this repository; BenchError in one line if it is none."""
    full = _git("rev-parse", "--verify", "--quiet", "--end-of-options", f"{ref}^{{commit}}")
    commit = full.stdout.strip()
    if full.returncode != 0 or not commit:
        raise BenchError(f"--baseline {ref}: not a git revision here")
    short = _git("rev-parse", "--short", commit).stdout.strip() or commit[:12]
    return Baseline(ref, commit, short, work.resolve() / "baseline" / short)


def extract(baseline: Baseline) -> None:
    """pipeline/ at the baseline's commit into its directory, afresh, and a check that
    `python -m pipeline` run from there imports that copy."""
    target = baseline.directory
    staging = target.with_name(f".{target.name}.tmp")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    archive = subprocess.Popen(
        ["git", "-C", str(REPO), "archive", "--format=tar", baseline.commit, "pipeline"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert archive.stdout is not None
    untar = subprocess.run(
        ["tar", "-x", "-C", str(staging)],
        stdin=archive.stdout,
        capture_output=True,
        text=True,
        check=False,
        timeout=TIMEOUT,
    )
    archive.stdout.close()
    _, archive_err = archive.communicate(timeout=TIMEOUT)
    if archive.returncode != 0:
        why = archive_err.decode(errors="replace").strip().splitlines()[-1:]
        raise BenchError(
            f"--baseline {baseline.ref}: no pipeline/ at {baseline.short} ({'; '.join(why)})"
        )
    if untar.returncode != 0:
        raise BenchError(f"--baseline {baseline.ref}: tar -x failed: {untar.stderr.strip()}")
    shutil.rmtree(target, ignore_errors=True)
    staging.rename(target)
    compile_ahead(target)
    imported = subprocess.run(
        [sys.executable, "-c", "import pipeline; print(pipeline.__file__)"],
        cwd=target,  # as the baseline's sides run it: same interpreter, same environment
        capture_output=True,
        text=True,
        check=False,
        timeout=TIMEOUT,
    )
    where = Path(imported.stdout.strip() or "?")
    if imported.returncode != 0 or not where.is_relative_to(target):
        raise BenchError(
            f"--baseline {baseline.ref}: python run from {target} imports pipeline from "
            f"{where}, not from that copy {imported.stderr.strip()[-300:]}"
        )


def compile_ahead(directory: Path) -> None:
    """`directory`/pipeline byte-compiled, as `pip install` leaves the installed command: where
    PYTHONDONTWRITEBYTECODE is set (this machine, many CI images), a run from the source tree
    would compile every module it imports again, a cost the installed command never pays."""
    done = subprocess.run(
        [sys.executable, "-m", "compileall", "-q", str(directory / "pipeline")],
        capture_output=True,
        text=True,
        check=False,
        timeout=TIMEOUT,
    )
    if done.returncode != 0:
        raise BenchError(f"compileall of {directory / 'pipeline'} failed: {done.stdout.strip()}")


def has_watch(baseline: Baseline) -> bool:
    """Whether the baseline's `multistage` has --watch (it came in 253de82)."""
    done = subprocess.run(
        [sys.executable, "-m", "pipeline", "multistage", "--help"],
        cwd=baseline.directory,
        env={**os.environ, "COLUMNS": "200", "NO_COLOR": "1"},
        capture_output=True,
        text=True,
        check=False,
        timeout=TIMEOUT,
    )
    return done.returncode == 0 and "--watch" in done.stdout
