"""Where the time of one of our one-shot runs goes.

One run of ours, as a user makes it after a one-line change (`multistage` with the image run
once at the end where the program runs without arguments, the tarball exported; without
--test, like the timed samples), split into:

- python start, the CLI's imports and `import dagger`: `python -c pass`,
  `python -m pipeline --help`, and the SDK imported as the pipeline imports it (without its
  runtime argument checks nor what a client does not use: `pipeline.engine.sdk.sdk_checks_off`,
  `sdk_lean`) less `import pipeline.cli.commands`, each
  the median of three, in fresh interpreters;
- session connect, source upload, pinning the bases, session close: the probe
  (`python -m bench.shared.engine probe`), which connects as the pipeline does (its session child
  started before `import dagger`, the schema from the cache: pipeline.engine.session.connected_to),
  uploads the same files our pipeline uploads, resolves the two base images and closes
  (estimates: the pipeline does not time these itself); connect is counted from the end of
  the import, so what the child did during the import is not in it, as in a run;
- go build, export, run and whatever other steps the pipeline reports in its own `--json`
  (its build step holds the upload, so the upload is taken out of it);
- other: the rest of the wall time (checking the source, writing the JSON, teardown).

And, beside it, what the defaults add: `--test` (go vet + go test before every build), for the
programs whose tests take seconds (age's take minutes: 212 s here with a cold cache).
"""

from __future__ import annotations

import json
import shlex
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bench.shared.programs import REPO, BenchError, Program, edited
from bench.shared.sides import Ours, engine_call
from bench.speed.report import Breakdown, Part

REPEATS = 3
IMPORT_DAGGER = (
    "import os\nfrom pipeline.engine.sdk import sdk_checks_off, sdk_lean\n"
    "with sdk_checks_off(), sdk_lean(os.environ):\n import dagger"
)


def _wall(command: list[str]) -> float:
    start = time.perf_counter()
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise BenchError(f"`{' '.join(command)}` failed: {done.stderr.strip()[-500:]}")
    return seconds


def _median_wall(command: list[str], repeats: int) -> float:
    return statistics.median(_wall(command) for _ in range(repeats))


def _our_run(
    ours: Ours, program: Program, source: Path, nonce: str, *, test: bool
) -> tuple[float, dict[str, float], list[str]]:
    """One run of ours after a one-line change, the image run at the end if the program runs
    without arguments: wall time, steps, and the command."""
    report = ours.workspace.out(f"breakdown-{program.name}.json")
    command = ours.command(program, source, report, test=test, run=program.runs_bare)
    with edited(source / program.source_file, nonce):
        seconds = _wall(command)
    steps: dict[str, float] = {}
    for step in json.loads(report.read_text())["steps"]:
        steps[step["name"]] = steps.get(step["name"], 0.0) + step["seconds"]
    return seconds, steps, command


def measure(
    ours: Ours, program: Program, source: Path, nonce: str, *, thorough: bool = True
) -> Breakdown:
    """The breakdown of one run of ours on `program`, with the raw figures behind it. Not
    `thorough` (--quick): one timing of each fixed cost instead of three, and no --test run."""
    repeats = REPEATS if thorough else 1
    fixed = _fixed_costs(repeats)
    ws = ours.workspace
    probe = engine_call("probe", str(source), program.package, ws.go_image, ws.runtime_image)
    total, steps, command = _our_run(ours, program, source, f"breakdown {nonce}", test=False)
    parts = _parts(fixed, probe["seconds"], steps, total, repeats)
    detail: dict[str, Any] = {"probe": probe, "steps": steps, "pipeline_help_wall": fixed[3]}
    if thorough and program.quick_tests:
        # Once untimed: the first go vet/go test after a prune compiles the test deps.
        _our_run(ours, program, source, f"breakdown warm tests {nonce}", test=True)
        tested_total, tested_steps, _ = _our_run(
            ours, program, source, f"breakdown tested {nonce}", test=True
        )
        detail["with_test"] = {"wall": tested_total, "steps": tested_steps}
    shown = shlex.join(["python", *command[1:]]).replace(str(REPO) + "/", "")
    return Breakdown(program.name, shown, total, tuple(parts), detail)


def _fixed_costs(repeats: int) -> tuple[float, float, float, float]:
    """Medians of `repeats`: python's start, the CLI module's import, `import dagger` as the
    pipeline imports it (less the CLI module's), and `python -m pipeline --help`."""
    python = sys.executable
    start = _median_wall([python, "-c", "pass"], repeats)
    cli_module = _median_wall([python, "-c", "import pipeline.cli.commands"], repeats)
    imported = _median_wall([python, "-c", IMPORT_DAGGER], repeats) - cli_module
    cli_help = _median_wall([python, "-m", "pipeline", "--help"], repeats)
    return start, cli_module, imported, cli_help


def _parts(
    fixed: tuple[float, float, float, float],
    session: dict[str, float],
    steps: dict[str, float],
    total: float,
    repeats: int,
) -> list[Part]:
    """The run's wall time as its parts: the fixed costs, the probe's session figures, the
    run's own steps, and what is left (`other`)."""
    start, _, imported, cli_help = fixed
    upload = session["upload"]
    parts = [
        Part("python start", start, f"`python -c pass`, median of {repeats}"),
        Part(
            "CLI imports",
            max(cli_help - start, 0.0),
            f"`python -m pipeline --help` - python start, median of {repeats} (no dagger in it)",
        ),
        Part(
            "import dagger",
            imported,
            f"as the pipeline imports it (sdk_checks_off, sdk_lean) - "
            f"`import pipeline.cli.commands`, median of {repeats}",
        ),
        Part(
            "session connect",
            session["connect"],
            "probe: connected as the pipeline connects (session child started before the "
            "import, schema cache) + first query",
        ),
        Part("source upload", upload, "probe: host directory of the build inputs, read afresh"),
    ]
    for name, seconds in steps.items():
        if name == "build":
            how = "pipeline --json step `build` - source upload"
            parts.append(Part("go build (+ assembly)", max(seconds - upload, 0.0), how))
        else:
            parts.append(Part(name, seconds, f"pipeline --json step `{name}`"))
    parts += [
        Part(
            "pin bases (est.)",
            session["resolve_bases"],
            "probe: go and runtime image resolved to digests, one after the other",
        ),
        Part("session close", session["close"], "probe: leaving dagger.connection()"),
    ]
    other = max(total - sum(p.seconds for p in parts), 0.0)
    how = "wall - the above: source checks, the base-image export, JSON, teardown"
    return [*parts, Part("other", other, how)]
