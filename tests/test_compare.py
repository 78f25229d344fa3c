"""pipeline.cli.compare: budgets, and `compare` end to end against the real engine: the table,
the JSON (checked against skopeo), the Markdown, the chart, budgets, warm caches, and each
step's progress line naming its image."""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest

from pipeline.cli.checks import parse_budget, parse_size
from pipeline.refs import SettingsError
from pipeline.results import human_size
from tests.conftest import ROOT, PipelineRunner, Testbed
from tests.test_progress import STEP_LINE

BASES = ("--runtime-image", "busybox:1.35", "--runtime-image", "scratch")
MIRROR_ENV = "PIPELINE_REGISTRY_MIRROR"  # the test bed's: docker.io=its plain registry


@pytest.mark.parametrize(
    ("text", "want"),
    [("10MB", 10_000_000), ("9.5MiB", 9_961_472), ("500kB", 500_000), ("123", 123), ("1GB", 10**9)],
)
def test_parse_size(text: str, want: int) -> None:
    assert parse_size(text) == want


@pytest.mark.parametrize("text", ["multistage=ten", "multistage", "=10MB", "Multi=1MB", "x=10XB"])
def test_parse_budget_rejects(text: str) -> None:
    with pytest.raises(SettingsError, match="--max-size"):
        parse_budget(text)


def test_parse_budget() -> None:
    assert parse_budget("multistage-scratch=2MB") == ("multistage-scratch", 2_000_000)


@pytest.fixture(scope="module")
def first(
    pipeline: PipelineRunner, testbed: Testbed, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Any]:
    """A compare as on a new machine whose engine pulls docker.io through a mirror: no blob
    kept (a cache directory of its own), the mirror given by the flag alone."""
    out = tmp_path_factory.mktemp("compare")
    unmirrored = PipelineRunner({k: v for k, v in pipeline.env.items() if k != MIRROR_ENV})
    ran = unmirrored(
        "compare",
        *BASES,
        "--registry-mirror",
        f"docker.io={testbed.registry}",
        "--json",
        str(out / "c.json"),
        "--markdown",
        str(out / "c.md"),
        "--chart",
        str(out / "c.svg"),
        extra_env={"XDG_CACHE_HOME": str(out / "cache")},
    )
    assert ran.returncode == 0, ran.stderr
    return {
        "out": out, "stdout": ran.stdout, "stderr": ran.stderr,
        "json": json.loads((out / "c.json").read_text()),
    }  # fmt: skip


@pytest.mark.engine
def test_an_empty_blob_store_reads_the_bases_through_the_mirror(
    first: dict[str, Any], testbed: Testbed
) -> None:
    """The bases' manifests (and their layers) came from the mirror into the run's own store:
    without --registry-mirror, compare asked docker.io itself (CI run on a new machine:
    `registry docker.io unreachable`)."""
    kept = {p.name for p in (first["out"] / "cache/pipeline/blobs/sha256").iterdir()}
    for base in ("TESTBED_GOLANG_DIGEST", "TESTBED_BUSYBOX_DIGEST"):
        assert testbed[base].removeprefix("sha256:") in kept, base


@pytest.mark.engine
def test_compare_says_which_image_each_step_is_for(first: dict[str, Any]) -> None:
    """Piped, each step's line names the image it is for (moved here from test_progress.py:
    it reads the first compare's stderr, not a compare of its own)."""
    lines = first["stderr"].splitlines()
    # One test for all the images, before their builds: no image named.
    assert lines[0] == "pipeline: test ..."
    assert re.fullmatch(r"pipeline: test done \d+\.\d\ds", lines[1]), lines[1]
    tags = [f"helloworld:{key}" for key in ("naive", "builder", "multistage", "multistage-scratch")]
    for tag in tags:
        own = [line.removeprefix("pipeline: ") for line in lines if f" {tag} " in f"{line} "]
        names = [
            line.split(f" {tag}")[0] for line in own if line.endswith(" ...")
        ]  # in the order they started
        want = ["build", "export", *(["export builder"] if tag.endswith(":builder") else []), "run"]
        assert names == want, f"{tag}: got {names}, want {want}"
        assert len(own) == 2 * len(want), own  # each started and ended
    assert all(STEP_LINE.match(line) for line in lines), lines  # nothing else on stderr


@pytest.fixture(scope="module")
def again(first: dict[str, Any], pipeline: PipelineRunner, tmp_path_factory: pytest.TempPathFactory
          ) -> dict[str, Any]:  # fmt: skip
    """A second compare after `first`, as CI logs one: piped, with no COLUMNS, and with a
    budget the multistage image is under. Several tests read it (a compare exports two
    naive images of hundreds of MB: one run, not three)."""
    size = next(r for r in first["json"]["rows"] if r["key"] == "multistage")["uncompressed"]
    report = tmp_path_factory.mktemp("again") / "again.json"
    env = {k: v for k, v in pipeline.env.items() if k != "COLUMNS"}
    command = pipeline.command(
        "compare", *BASES, "--no-test", "--quiet", "--json", str(report),
        "--max-size", f"multistage={size + 1000}B",
    )  # fmt: skip
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True,
                          check=False, timeout=900)  # fmt: skip
    return {"ran": done, "json": json.loads(report.read_text()) if report.exists() else {}}


@pytest.mark.engine
def test_writes_json_markdown_and_chart(first: dict[str, Any]) -> None:
    out: Path = first["out"]
    data = first["json"]
    assert data["schema_version"] == 1
    keys = [row["key"] for row in data["rows"]]
    assert keys == ["naive", "builder", "builder-build", "multistage", "multistage-scratch"]
    markdown = (out / "c.md").read_text()
    assert markdown.count("\n| `helloworld") == 5
    assert "python -m pipeline compare" in markdown
    svg = (out / "c.svg").read_text()
    assert svg.lstrip().startswith("<?xml")
    assert "<svg" in svg
    assert "smaller than naive" in svg


@pytest.mark.engine
def test_table_and_json_agree(first: dict[str, Any]) -> None:
    rows = {row["key"]: row for row in first["json"]["rows"]}
    ratio = rows["multistage"]["times_smaller_than_naive"]
    assert ratio == round(rows["naive"]["uncompressed"] / rows["multistage"]["uncompressed"], 1)
    assert f"{ratio:g}x smaller" in first["stdout"]
    assert first["json"]["conclusion"] in first["stdout"].replace("\n", " ")
    for row in rows.values():
        assert row["digest"].removeprefix("sha256:")[:12] not in ("", None)
    naive, scratch = rows["naive"], rows["multistage-scratch"]
    assert (naive["toolchain"], naive["source"], naive["shell"]) == (True, True, True)
    assert (scratch["toolchain"], scratch["source"], scratch["shell"]) == (False, False, False)
    assert scratch["binary_bytes"] == first["json"]["floor_bytes"]
    assert scratch["base_bytes"] == 0
    assert (
        rows["multistage"]["own_bytes"] + rows["multistage"]["base_bytes"]
        == rows["multistage"]["uncompressed"]
    )
    assert rows["multistage"]["printed"] == "Hello World\n"


@pytest.mark.engine
@pytest.mark.parametrize(("variant", "key"), [("naive", "naive"), ("multistage", "multistage")])
def test_sizes_agree_with_skopeo(
    first: dict[str, Any],
    pipeline: PipelineRunner,
    testbed: Testbed,
    tmp_path: Path,
    variant: str,
    key: str,
) -> None:
    """The same image, exported by the variant's own command: same digest, and the compressed
    size compare reported is skopeo's, to the byte."""
    row = next(r for r in first["json"]["rows"] if r["key"] == key)
    tarball = tmp_path / "image.tar"
    ran = pipeline(
        variant,
        "--runtime-image",
        "busybox:1.35",
        "--no-test",
        "--no-run",
        "--output",
        str(tarball),
    )
    assert ran.returncode == 0, ran.stderr
    raw = testbed.skopeo("inspect", "--raw", f"oci-archive:{tarball}").stdout
    assert "sha256:" + hashlib.sha256(raw.encode()).hexdigest() == row["digest"]
    assert sum(layer["size"] for layer in json.loads(raw)["layers"]) == row["compressed"]


@pytest.mark.engine
def test_second_run_is_warm(again: dict[str, Any]) -> None:
    ran = again["ran"]
    assert ran.returncode == 0, ran.stderr
    rows = again["json"]["rows"]
    assert {row["cache"] for row in rows} == {"warm"}
    assert "cold" not in ran.stdout


@pytest.mark.engine
def test_budgets(
    first: dict[str, Any], again: dict[str, Any], pipeline: PipelineRunner, tmp_path: Path
) -> None:
    size = next(r for r in first["json"]["rows"] if r["key"] == "multistage")["uncompressed"]
    under = pipeline(
        "compare",
        *BASES,
        "--max-size",
        f"multistage={size - 1000}B",
        "--json",
        str(tmp_path / "under.json"),
    )
    assert under.returncode == 1
    (line,) = [x for x in under.stderr.splitlines() if x.startswith("over budget:")]
    assert re.search(
        r"helloworld:multistage is [\d.]+MB uncompressed, over its budget of "
        r"[\d.]+MB; biggest layer: \w{12} \(.+\), [\d.]+[kM]B",
        line,
    ), line
    assert json.loads((tmp_path / "under.json").read_text())["budgets"][0]["ok"] is False
    over = again["ran"]  # under a budget of size + 1000 B
    assert over.returncode == 0, over.stderr


def test_budget_parse_error_exits_2(tmp_path: Path) -> None:
    import subprocess
    import sys

    from tests.conftest import ROOT

    done = subprocess.run(
        [sys.executable, "-m", "pipeline", "compare", "--max-size", "multistage=ten"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 2
    assert done.stderr.strip() == (
        "error: --max-size 'multistage=ten': 'ten' is not a size; write e.g. multistage=10MB"
    )


@pytest.mark.engine
def test_piped_without_columns_nothing_is_cut(again: dict[str, Any]) -> None:
    """In a CI log (a pipe, no COLUMNS) rich would fit the table in 80 columns and cut every
    cell (`he…`, `3.…`); every image name and size must come out whole."""
    done = again["ran"]
    assert done.returncode == 0, done.stderr
    assert "…" not in done.stdout
    for row in again["json"]["rows"]:
        assert row["ref"] in done.stdout, row["ref"]
        assert human_size(row["uncompressed"]) in done.stdout
        assert human_size(row["compressed"]) in done.stdout
