"""The bench harness (bench/): its command line, the edits its scenarios make, the floor, the
reports, and (against the engine and the test bed's Docker) a tiny real run."""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from bench import baseline as baselines
from bench.baseline import Baseline
from bench.cli import resolve
from bench.programs import PROGRAMS, BenchError, edited, floor
from bench.report import (
    Breakdown,
    Part,
    ProgramInfo,
    Results,
    Sample,
    Size,
    from_json,
    markdown,
    render,
)
from bench.run import Options, rotated
from bench.scenarios import Scenario, for_peer
from bench.sides import Ours, Workspace
from bench.sizes import docker_save_uncompressed
from bench.watch import OursWatch, WatchProcess

ROOT = Path(__file__).resolve().parent.parent


def _bench(
    *args: str, env: dict[str, str] | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bench", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=timeout,
    )


def test_help_answers_without_importing_dagger() -> None:
    done = _bench("--help", env={**os.environ, "COLUMNS": "200"})
    assert done.returncode == 0, done.stderr
    for flag in ("--samples", "--quick", "--json", "--programs"):
        assert flag in done.stdout, f"{flag} missing from --help"
    imported = subprocess.run(
        [sys.executable, "-c", "import sys, bench.cli; print('dagger' in sys.modules)"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    assert imported.stdout.strip() == "False"


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (["--samples", "0"], "--samples"),
        (["--programs", "nosuch"], "choose from helloworld, age"),
        (["--scenarios", "warm"], "choose from cold"),
        (["--quick", "--samples", "3"], "--quick"),
        (["--quick", "--programs", "age"], "hello world only"),
    ],
)
def test_bad_flags_exit_2_before_any_work(args: list[str], said: str) -> None:
    done = _bench(*args, env={**os.environ, "COLUMNS": "200"})
    assert done.returncode == 2, f"got exit {done.returncode}, want 2: {done.stderr}"
    assert said in done.stderr


def _resolve(**overrides: Any) -> Options:
    given: dict[str, Any] = {
        "samples": None,
        "cold_samples": None,
        "quick": False,
        "programs": None,
        "peers": None,
        "scenarios": None,
        "work": Path("bench/.work"),
        "registry": "127.0.0.1:5000",
        "docker": "/usr/bin/docker",
        "go_image": "golang:1.26",
        "runtime_image": "busybox:1.35",
        "breakdown": True,
        "baseline": None,
    }
    return resolve(**{**given, **overrides})


def test_defaults_and_quick_resolve_to_the_documented_work() -> None:
    full = _resolve()
    quick = _resolve(quick=True)
    some = _resolve(
        samples=3, cold_samples=2, programs=["age,helloworld"], scenarios=["cold", "no change"]
    )
    assert (full.samples, full.cold_samples, full.programs) == (5, 1, ("helloworld", "age"))
    assert full.scenarios == tuple(Scenario)
    assert full.peers == ("docker", "ko")
    assert (quick.samples, quick.cold_samples, quick.programs) == (1, 1, ("helloworld",))
    assert quick.quick
    assert not full.quick
    assert (some.samples, some.cold_samples) == (3, 2)
    assert some.programs == ("age", "helloworld")
    assert some.scenarios == (Scenario.COLD, Scenario.NO_CHANGE)


@pytest.fixture
def hello(tmp_path: Path) -> Path:
    if shutil.which("go") is None:
        pytest.skip("no go on PATH")
    copy = tmp_path / "helloworld"
    shutil.copytree(ROOT / "go-src", copy)
    return copy


def test_one_line_edit_compiles_and_is_undone_byte_for_byte(hello: Path) -> None:
    source = hello / PROGRAMS["helloworld"].source_file
    before = source.read_bytes()
    with edited(source, "n1"):
        assert source.read_bytes() != before
        assert source.read_text().splitlines()[-1] == 'var _ = "bench edit n1"'
        vet = subprocess.run(
            ["go", "vet", "."], cwd=hello, capture_output=True, text=True, check=False
        )
        assert vet.returncode == 0, vet.stderr
    assert source.read_bytes() == before


def test_edit_is_undone_when_the_build_fails(hello: Path) -> None:
    source = hello / PROGRAMS["helloworld"].test_file
    before = source.read_bytes()
    with pytest.raises(RuntimeError), edited(source, "n2"):
        raise RuntimeError("the build failed")
    assert source.read_bytes() == before


def test_floor_is_the_static_binary(hello: Path, tmp_path: Path) -> None:
    out = tmp_path / "floor"
    size = floor(PROGRAMS["helloworld"], hello, out)
    assert size == out.stat().st_size
    assert 1_000_000 < size < 3_000_000, f"got {size} bytes for hello world, want about 1.6 MB"
    assert out.read_bytes()[:4] == b"\x7fELF"


def test_docker_save_uncompressed_counts_the_layer_tars(tmp_path: Path) -> None:
    tarball = tmp_path / "saved.tar"
    layers = {"a/layer.tar": b"x" * 3072, "b/layer.tar": b"y" * 1536}
    with tarfile.open(tarball, "w") as tar:
        files = {
            "manifest.json": json.dumps([{"Layers": list(layers)}]).encode(),
            **layers,
            "c/layer.tar": b"z" * 512,  # in the tarball, not in the image
        }
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    assert docker_save_uncompressed(tarball) == 3072 + 1536


def _results() -> Results:
    samples = (
        [
            Sample("helloworld", "docker", "one-line change", "ours (export)", i, s)
            for i, s in enumerate([1.0, 3.0, 2.0])
        ]
        + [
            Sample("helloworld", "docker", "one-line change", "docker", i, s)
            for i, s in enumerate([0.5, 0.5, 4.0])
        ]
        + [
            Sample(
                "helloworld",
                "docker",
                "cold",
                "ours (export)",
                0,
                8.0,
                {"cold_start": {"cache_bytes_left": 2_000_000}},
            ),
            Sample("helloworld", "docker", "cold", "docker", 0, 10.0, {"cold_start": {}}),
        ]
    )
    return Results(
        started="2026-11-28T04:00:00+00:00",
        seconds=12.5,
        command="python -m bench --quick",
        options={"samples": 3},
        machine={"cpu_count": 2, "memory_bytes": 2**34, "kernel": "6.1"},
        programs=(ProgramInfo("helloworld", "go-src/", ".", 1_585_314),),
        samples=tuple(samples),
        sizes=(
            Size("helloworld", "ours (export)", "t", 3_721_728, 1_747_066, 2, 1_585_314),
            Size("helloworld", "docker", "r", 3_722_752, 1_792_000, 2, 1_585_314),
        ),
        breakdowns=(
            Breakdown(
                "helloworld",
                "python -m pipeline multistage",
                4.0,
                (Part("import dagger", 1.0, "import"), Part("other", 3.0, "rest")),
                {"pipeline_help_wall": 0.25},
            ),
        ),
    )


def test_rows_take_medians_and_ratios_ours_over_peer() -> None:
    rows = {r.scenario: r for r in _results().rows()}
    one_line = rows["one-line change"]
    assert (one_line.ours.median, one_line.ours.n) == (2.0, 3)
    assert (one_line.theirs.median, one_line.theirs.n) == (0.5, 3)
    assert one_line.ratio == pytest.approx(4.0)
    assert one_line.note == ""
    assert rows["cold"].ratio == pytest.approx(0.8)
    assert "2MB" in rows["cold"].note, "a cold sample the prune could not empty must say so"


def test_json_keeps_every_sample_and_reads_back(tmp_path: Path) -> None:
    results = _results()
    data = json.loads(json.dumps(results.to_json()))
    assert len(data["samples"]) == len(results.samples)
    assert data["summary"][0]["ratio"] == 4.0
    assert from_json(data) == results


def test_markdown_has_the_tables() -> None:
    text = markdown(_results())
    assert "| helloworld | one-line change | docker | 2.00s | 3 | 0.50s | 3 | 4.00x |" in text
    assert "| helloworld | cold* | docker | 8.00s | 1 | 10.00s | 1 | 0.80x |" in text
    assert "| helloworld | docker | 3.72MB | 1.79MB | 2 | 1.59MB | 2.35x |" in text
    assert "| import dagger | 1.00s | 25% | import |" in text
    assert "`python -m pipeline --help`: 0.25s" in text


@pytest.mark.engine
def test_engine_probe_times_the_fixed_costs(engine_env: dict[str, str]) -> None:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench.engine",
            "probe",
            "go-src",
            ".",
            "golang:1.26",
            "busybox:1.35",
        ],
        cwd=ROOT,
        env=engine_env,
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    probe = json.loads(done.stdout)
    want = {"import_dagger", "connect", "upload", "resolve_bases", "close"}
    assert set(probe["seconds"]) == want
    assert all(seconds > 0 for seconds in probe["seconds"].values())
    assert probe["engine_version"].startswith("v")


@pytest.mark.engine
def test_a_tiny_real_run_against_docker(engine_env: dict[str, str], tmp_path: Path) -> None:
    """One no-change sample of ours and of docker on hello world: the JSON has both samples
    and both images, of the same size to within 1%."""
    report = tmp_path / "bench.json"
    done = _bench(
        "--programs=helloworld",
        "--peers=docker",
        "--scenarios=no change",
        "--samples=1",
        "--no-breakdown",
        f"--json={report}",
        f"--markdown={tmp_path / 'bench.md'}",
        f"--work={tmp_path / 'work'}",
        env={**engine_env, "COLUMNS": "200"},
        timeout=600,
    )
    assert done.returncode == 0, done.stderr
    data = json.loads(report.read_text())
    assert sorted(s["side"] for s in data["samples"]) == ["docker", "ours (export)"]
    assert all(s["seconds"] > 0 for s in data["samples"])
    sizes = {s["side"]: s for s in data["sizes"]}
    assert set(sizes) == {"ours (export)", "docker"}
    ours, docker = sizes["ours (export)"]["uncompressed"], sizes["docker"]["uncompressed"]
    assert abs(ours - docker) / docker < 0.01, f"ours {ours} B, docker {docker} B"
    assert "no change" in (tmp_path / "bench.md").read_text()


# --- --baseline ---------------------------------------------------------------------------


def _git(*args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(ROOT), *args], capture_output=True, text=True, check=True
    ).stdout.strip()


@pytest.mark.parametrize("ref", ["no-such-revision", "HEAD^{tree}", "--all"])
def test_a_bad_baseline_says_so_in_one_line_and_exits_1(ref: str, tmp_path: Path) -> None:
    done = _bench("--quick", f"--baseline={ref}", f"--json={tmp_path / 'x.json'}")
    assert done.returncode == 1, f"got exit {done.returncode}, want 1: {done.stderr}"
    assert done.stderr.strip() == f"bench: --baseline {ref}: not a git revision here"
    assert done.stdout == ""
    assert not (tmp_path / "x.json").exists()


def test_baseline_resolves_to_a_commit_under_the_work_directory(tmp_path: Path) -> None:
    options = _resolve(baseline="HEAD", work=tmp_path)
    assert options.baseline is not None
    assert options.baseline.commit == _git("rev-parse", "HEAD")
    assert options.baseline.short == _git("rev-parse", "--short", "HEAD")
    assert options.baseline.directory == tmp_path.resolve() / "baseline" / options.baseline.short
    assert options.baseline.label == f"ours@{options.baseline.short}"
    assert _resolve().baseline is None


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
    assert (copy / "cli.py").read_text() == subprocess.run(
        ["git", "-C", str(ROOT), "show", f"{chosen.commit}:pipeline/cli.py"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    baselines.extract(chosen)  # again, over the first copy: afresh
    assert baselines.has_watch(chosen)
    where = subprocess.run(
        [sys.executable, "-c", "import pipeline.cli; print(pipeline.cli.__file__)"],
        cwd=chosen.directory,
        capture_output=True,
        text=True,
        check=True,
    )
    assert Path(where.stdout.strip()) == copy / "cli.py"


def test_sides_of_the_baseline_have_names_files_and_refs_of_their_own(tmp_path: Path) -> None:
    workspace = Workspace(
        root=tmp_path,
        registry="127.0.0.1:5000",
        docker="docker",
        ko=Path("ko"),
        go_image="golang:1.26",
        runtime_image="busybox:1.35",
        platform="linux/amd64",
    )
    chosen = Baseline("HEAD~3", "0" * 40, "1a2b3c4", tmp_path / "baseline" / "1a2b3c4")
    hello = PROGRAMS["helloworld"]
    now, before = Ours(workspace, publish=False), Ours(workspace, publish=False, baseline=chosen)
    assert (now.name, before.name) == ("ours (export)", "ours@1a2b3c4 (export)")
    assert Ours(workspace, publish=True, baseline=chosen).name == "ours@1a2b3c4 (publish)"
    assert OursWatch(workspace, before).name == "ours@1a2b3c4 (watch)"
    assert (now.cwd, before.cwd) == (ROOT, chosen.directory)
    assert now.file(hello, ".tar") != before.file(hello, ".tar")
    assert now.image_ref(hello) != Ours(workspace, publish=True, baseline=chosen).image_ref(hello)
    command = before.command(hello, tmp_path / "src", tmp_path / "r.json", watch=True)
    assert command[1:5] == ["-m", "pipeline", "multistage", "--watch"]
    assert all(Path(arg).is_absolute() for arg in command if "/" in arg and ":" not in arg)


def test_sides_rotate_so_that_each_goes_first_in_turn() -> None:
    sides = ["ours", "ours@1a2b3c4", "docker"]
    orders = [rotated(sides, i) for i in range(4)]
    assert [o[0] for o in orders] == ["ours", "ours@1a2b3c4", "docker", "ours"]
    assert all(sorted(o) == sorted(sides) for o in orders)
    assert [rotated(["ours", "ko"], i) for i in range(2)] == [["ours", "ko"], ["ko", "ours"]]


def _with_baseline() -> Results:
    """_results() plus the baseline's samples, slower in one-line change, faster when cold."""
    before = [
        Sample("helloworld", "docker", "one-line change", "ours@1a2b3c4 (export)", i, s)
        for i, s in enumerate([4.0, 6.0, 5.0])
    ] + [
        Sample(
            "helloworld",
            "docker",
            "cold",
            "ours@1a2b3c4 (export)",
            0,
            4.0,
            {"cold_start": {"cache_bytes_left": 0}},
        )
    ]
    results = _results()
    return replace(
        results,
        samples=(*results.samples, *before),
        baseline={
            "ref": "HEAD~3",
            "commit": "1a2b3c4" + "0" * 33,
            "short": "1a2b3c4",
            "side_prefix": "ours@1a2b3c4",
            "watch": True,
        },
    )


def test_the_baseline_is_never_ours_nor_the_peer_in_the_ours_vs_peer_rows() -> None:
    with_baseline = _with_baseline()
    assert with_baseline.rows() == _results().rows()
    baseline_sample = next(s for s in with_baseline.samples if s.side.startswith("ours@"))
    assert baseline_sample.baseline
    assert not baseline_sample.ours


def test_before_and_after_takes_medians_and_ratios_now_over_before() -> None:
    changes = {c.scenario: c for c in _with_baseline().changes()}
    one_line = changes["one-line change"]
    assert (one_line.before.median, one_line.before.n) == (5.0, 3)
    assert (one_line.now.median, one_line.now.n) == (2.0, 3)
    assert one_line.ratio == pytest.approx(0.4)
    assert changes["cold"].ratio == pytest.approx(2.0)
    assert "2MB" in changes["cold"].note
    assert _results().changes() == []


def test_before_and_after_is_in_the_json_and_the_markdown(tmp_path: Path) -> None:
    results = _with_baseline()
    data = json.loads(json.dumps(results.to_json()))
    assert data["schema_version"] == 1
    assert data["baseline"]["side_prefix"] == "ours@1a2b3c4"
    assert data["before_after"][0] == {
        "program": "helloworld",
        "peer": "docker",
        "scenario": "one-line change",
        "before": {"median": 5.0, "n": 3},
        "now": {"median": 2.0, "n": 3},
        "ratio": 0.4,
        "note": "",
    }
    assert [r["ratio"] for r in data["summary"]] == [4.0, 0.8]
    assert from_json(data) == results
    text = markdown(results)
    assert "## Before and after (ours@1a2b3c4 vs ours, same run)" in text
    assert "| program | scenario | peer | ours@1a2b3c4 (median) | n | ours (median) | n |" in text
    assert "| helloworld | one-line change | docker | 5.00s | 3 | 2.00s | 3 | 0.40x |" in text
    without = _results()
    assert "Before and after" not in markdown(without)
    old = without.to_json()
    del old["baseline"], old["before_after"]  # a file written before --baseline existed
    assert from_json(old) == without
    shown = io.StringIO()
    render(results, Console(file=shown, width=200))
    assert "Before and after (ours@1a2b3c4 vs ours, same run)" in shown.getvalue()
    assert "0.40x" in shown.getvalue()


# --- the watch scenario -------------------------------------------------------------------


def test_watch_is_a_scenario_of_the_docker_comparison_only() -> None:
    everything = list(Scenario)
    assert Scenario.WATCH in _resolve().scenarios
    assert Scenario.WATCH in _resolve(quick=True).scenarios
    assert for_peer("docker", everything) == everything
    assert Scenario.WATCH not in for_peer("ko", everything)
    assert for_peer("ko", [Scenario.WATCH]) == []


# A stand-in for `python -m pipeline multistage --watch` as the harness sees it: lines on
# stderr (argv), then it waits for SIGINT and exits 130, or exits with the code given.
FAKE_WATCH = """
import sys, time
*lines, code = sys.argv[1:]
try:
    for line in lines:
        print(line, file=sys.stderr, flush=True)
        time.sleep(0.05)
    if code != "wait":
        sys.exit(int(code))
    time.sleep(60)
except KeyboardInterrupt:
    sys.exit(130)
"""


def _fake(tmp_path: Path, *args: str) -> WatchProcess:
    return WatchProcess(
        "fake (watch)",
        [sys.executable, "-c", FAKE_WATCH, *args],
        cwd=tmp_path,
        log=tmp_path / "fake.log",
    )


def test_watch_process_times_each_build_by_its_watching_line(tmp_path: Path) -> None:
    process = _fake(tmp_path, "building", "watching /src", "watching /src", "wait")
    try:
        start = time.perf_counter()
        first = process.next_build(30)
        second = process.next_build(30)
        assert start < first <= second <= time.perf_counter()
        assert list(process.tail) == ["building", "watching /src", "watching /src"]
    finally:
        assert process.stop() == 130


def test_watch_process_fails_a_build_that_printed_error(tmp_path: Path) -> None:
    process = _fake(
        tmp_path, "go: x.go:3: syntax error", "error: the build failed", "watching /src", "wait"
    )
    try:
        with pytest.raises(
            BenchError, match=r"fake \(watch\): the build failed .*error: the build"
        ):
            process.next_build(30)
    finally:
        assert process.stop() == 130


def test_watch_process_that_ends_or_says_nothing_is_an_error(tmp_path: Path) -> None:
    ended = _fake(tmp_path, "boom", "3")
    with pytest.raises(BenchError, match=r"ended \(exit 3\)(.|\n)*boom"):
        ended.next_build(30)
    assert ended.stop() == 3
    silent = _fake(tmp_path, "wait")
    try:
        start = time.perf_counter()
        with pytest.raises(BenchError, match="no build result"):
            silent.next_build(0.5)
        assert 0.5 <= time.perf_counter() - start < 5
    finally:
        assert silent.stop() == 130


@pytest.mark.engine
def test_a_watch_build_that_fails_fails_the_sample(
    engine_env: dict[str, str], hello: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A real --watch process; an edit that does not compile (the nonce closes the string):
    the sample fails and says why, the edit is undone, the process stops on SIGINT (130)."""
    for key, value in engine_env.items():
        monkeypatch.setenv(key, value)
    workspace = Workspace(
        root=tmp_path / "work",
        registry=engine_env.get("TESTBED_REGISTRY", "127.0.0.1:5000"),
        docker="docker",
        ko=Path("ko"),
        go_image="golang:1.26",
        runtime_image="busybox:1.35",
        platform="linux/amd64",
    )
    program = PROGRAMS["helloworld"]
    side = OursWatch(workspace, Ours(workspace, publish=False))
    said: list[str] = []
    try:
        assert side.start(program, hello, said.append) > 0
        assert side.source is not None
        original = (side.source / program.source_file).read_bytes()
        with pytest.raises(BenchError, match=r"ours \(watch\): the build failed") as failed:
            side.sample(program, 'broken" here')
        assert "greeting.go" in str(failed.value), "the message quotes the compiler"
        assert (side.source / program.source_file).read_bytes() == original
    finally:
        assert side.stop() == 130
    assert "first build" in said[0]


@pytest.mark.engine
def test_a_real_run_with_the_watch_scenario_and_a_baseline(
    engine_env: dict[str, str], tmp_path: Path
) -> None:
    """Hello world against docker, no change and the watch scenario, 2 samples each, with
    --baseline HEAD: three sides in each, rotated; every watch sample a new image; the
    ours-vs-docker rows without the baseline; the watch processes gone afterwards."""
    report, work = tmp_path / "bench.json", tmp_path / "work"
    done = _bench(
        "--programs=helloworld",
        "--peers=docker",
        "--scenarios=no change,watch: one-line change",
        "--samples=2",
        "--no-breakdown",
        "--baseline=HEAD",
        f"--json={report}",
        f"--markdown={tmp_path / 'bench.md'}",
        f"--work={work}",
        env={**engine_env, "COLUMNS": "200"},
        timeout=600,
    )
    assert done.returncode == 0, done.stderr
    data = json.loads(report.read_text())
    short = _git("rev-parse", "--short", "HEAD")
    assert data["baseline"]["short"] == short
    assert data["baseline"]["watch"] is True
    assert (work / "baseline" / short / "pipeline" / "__main__.py").is_file()
    by_scenario: dict[str, list[dict[str, Any]]] = {}
    for sample in data["samples"]:
        by_scenario.setdefault(sample["scenario"], []).append(sample)
    assert [s["side"] for s in by_scenario["no change"]] == [
        "ours (export)",
        f"ours@{short} (export)",
        "docker",
        f"ours@{short} (export)",
        "docker",
        "ours (export)",
    ]
    watch = by_scenario["watch: one-line change"]
    assert [s["side"] for s in watch] == [
        "ours (watch)",
        f"ours@{short} (watch)",
        "docker",
        f"ours@{short} (watch)",
        "docker",
        "ours (watch)",
    ]
    digests = [s["detail"]["digest"] for s in watch if "(watch)" in s["side"]]
    assert len(set(digests)) == 4, f"every watch sample builds a new image: {digests}"
    assert all(0 < s["seconds"] < 120 for s in watch)
    summary = {r["scenario"]: r for r in data["summary"]}
    assert summary["watch: one-line change"]["ours"]["n"] == 2
    assert summary["watch: one-line change"]["theirs"]["n"] == 2
    assert [(c["scenario"], c["before"]["n"], c["now"]["n"]) for c in data["before_after"]] == [
        ("no change", 2, 2),
        ("watch: one-line change", 2, 2),
    ]
    assert f"Before and after (ours@{short} vs ours, same run)" in done.stdout
    assert f"## Before and after (ours@{short} vs ours" in (tmp_path / "bench.md").read_text()
    assert _processes_naming(work) == [], "a --watch process outlived the bench"


def _processes_naming(path: Path) -> list[str]:
    """The command lines of the running processes that name `path`."""
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            words = cmdline.read_bytes().split(b"\0")
        except OSError:  # gone meanwhile
            continue
        if any(str(path).encode() in word for word in words):
            found.append(b" ".join(words).decode(errors="replace"))
    return found
