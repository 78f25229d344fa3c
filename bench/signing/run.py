"""What signing costs a publish: go-src/'s multistage image published warm, each sample under a
new --app-version (a new label, so a new digest to sign; the build itself is cached), by

- `ours (publish)`: `python -m pipeline multistage --publish`, unsigned;
- `ours (publish, signed)`: the same with `--sign-key`: the image and its provenance and SBOM
  attestations signed in the run (the `sign` step of its --json);
- `ours (publish) + cosign sign`: the unsigned publish, then `cosign sign --key` (v2.6.5, no
  transparency log) of the pushed digest, as ko's users sign: the peer.

Both sign with the same key file (cosign's own format, scrypt-sealed). The sides take turns
for each sample. The goal: our sign step under 0.3 s (median)."""

from __future__ import annotations

import json
import os
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from bench.shared.programs import REPO
from bench.shared.sides import Workspace, timed
from bench.shared.tables import scenario_markdown, seconds_cell

SIDES = ("ours (publish)", "ours (publish, signed)", "ours (publish) + cosign sign")
PASSWORD = "bench-signing"
GOAL = 0.3  # seconds: the sign step's median
COSIGN = "v2.6.5"


@dataclass(frozen=True)
class Sample:
    side: str
    seconds: float  # the whole side: the run (and cosign)
    signing: float | None  # the part that signs: our sign step, or cosign sign


def cosign_binary() -> Path:
    tools = Path(
        os.environ.get("PIPELINE_TOOLS_DIR")
        or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "pipeline-tools"
    )
    return tools / f"cosign-{COSIGN}" / "cosign"


def key_pair(ws: Workspace) -> Path:
    """cosign generate-key-pair in the workspace (once): the key both sides sign with."""
    directory = ws.root / "signing"
    directory.mkdir(parents=True, exist_ok=True)
    key = directory / "cosign.key"
    if not key.is_file():
        env = {**os.environ, "COSIGN_PASSWORD": PASSWORD}
        timed([str(cosign_binary()), "generate-key-pair"], cwd=directory, env=env)
    return key


def _publish(ws: Workspace, version: str, report: Path, key: Path | None) -> float:
    command = [
        sys.executable, "-m", "pipeline", "multistage", "--source", str(REPO / "go-src"),
        "--no-test", "--no-run", "--no-output", "--quiet", "--go-image", ws.go_image,
        "--runtime-image", ws.runtime_image, "--app-version", version,
        "--publish", f"{ws.registry}/bench-signing/hello:latest", "--json", str(report),
        *(["--sign-key", str(key)] if key else []),
    ]  # fmt: skip
    return timed(command, env={**os.environ, "PIPELINE_SIGN_PASSWORD": PASSWORD})


def sample(side: str, ws: Workspace, key: Path, version: str) -> Sample:
    """One publish of a new version by `side`, timed."""
    report = ws.out(f"signing-{SIDES.index(side)}.json")
    signed = side == "ours (publish, signed)"
    seconds = _publish(ws, version, report, key if signed else None)
    found = json.loads(report.read_text())
    if signed:
        steps = {s["name"]: s["seconds"] for s in found["steps"]}
        return Sample(side, seconds, steps["sign"])
    if side == "ours (publish)":
        return Sample(side, seconds, None)
    pushed = found["images"][0]["published"].split(":latest@")
    reference = f"{pushed[0]}@{pushed[1]}"
    env = {**os.environ, "COSIGN_PASSWORD": PASSWORD}
    signing = timed(
        [str(cosign_binary()), "sign", "--key", str(key), "--tlog-upload=false", "--yes",
         reference],
        env=env,
    )  # fmt: skip
    return Sample(side, seconds + signing, signing)


def run(ws: Workspace, samples: int, say: Callable[[str], None]) -> dict[str, Any]:
    """Warm the build once, then `samples` rounds, the sides in turn, each a new version."""
    key = key_pair(ws)
    started = time.time_ns()
    for side in SIDES:
        warm = sample(side, ws, key, f"v0.0.0-warm.{started}")
        say(f"signing: warming {side}: {warm.seconds:.2f}s")
    found: list[Sample] = []
    for number in range(samples):
        order = SIDES[number % len(SIDES) :] + SIDES[: number % len(SIDES)]
        for side in order:
            got = sample(side, ws, key, f"v0.0.{number}-{SIDES.index(side)}.{started}")
            found.append(got)
            say(f"signing: {side} sample {number + 1}/{samples}: {got.seconds:.2f}s")
    return {"samples": [asdict(s) for s in found], **summary(found)}


def summary(found: list[Sample]) -> dict[str, Any]:
    """Each side's medians (whole, and its signing part); what signing adds to our publish,
    and our sign step against cosign sign as a ratio."""
    medians = {
        side: {
            "seconds": statistics.median(s.seconds for s in found if s.side == side),
            "signing": statistics.median(
                [s.signing for s in found if s.side == side and s.signing is not None] or [0.0]
            ),
        }
        for side in SIDES
        if any(s.side == side for s in found)
    }
    ours, peer = medians.get(SIDES[1]), medians.get(SIDES[2])
    result: dict[str, Any] = {"medians": medians}
    if ours is not None and peer is not None:
        result["sign_step"] = {
            "median": ours["signing"],
            "goal": GOAL,
            "met": ours["signing"] < GOAL,
            "vs_cosign_sign": ours["signing"] / peer["signing"],
        }
    return result


def cells(results: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    header = ["side", "median", "signing part"]
    rows = [
        [side, seconds_cell(m["seconds"]), seconds_cell(m["signing"]) if m["signing"] else "-"]
        for side, m in results["medians"].items()
    ]
    step = results.get("sign_step")
    if step is not None:
        rows.append(
            [
                "our sign step / cosign sign",
                f"{step['vs_cosign_sign']:.2f}x",
                f"{seconds_cell(step['median'])} (goal < {step['goal']:.1f}s: "
                f"{'met' if step['met'] else 'not met'})",
            ]
        )
    return header, rows


def markdown(results: dict[str, Any], command: str, machine: str) -> str:
    return scenario_markdown(
        "What signing adds to a publish", cells(results), results, command, machine
    )
