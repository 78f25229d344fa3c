"""bench/load/run.py, bench/load/report.py and bench/shared/cpu.py: the percentiles, the throughput
ratio, CPU busy from /proc/stat, the plan of runs and their command lines, the checks on made-up
passes, the load command's flags (without the engine); and (against the real engine, over the
test bed's mutual TLS) a whole `python -m bench load --quick`, judged by the JSON it writes."""

from __future__ import annotations

import json
import os
import random
import statistics
from pathlib import Path
from typing import Any

import pytest
import typer

from bench.cli import masked, resolve_load
from bench.load.report import (
    OTHER,
    LoadResults,
    Pass,
    Planned,
    RunSample,
    Victim,
    percentile,
    throughput_ratio,
)
from bench.load.run import (
    MULTI_PLATFORM_BASE,
    PASSWORD_ENV,
    Launcher,
    LoadOptions,
    Reach,
    environment,
    padding,
    plan,
)
from bench.shared.cpu import Times, busy_percent, parse
from pipeline.engine.address import Address
from tests.bench_fixtures import _bench
from tests.conftest import NO_ENGINE, Testbed

PASSWORD = "s3cret-not-in-any-output"


# --- percentiles and the ratio --------------------------------------------------------


@pytest.mark.parametrize(
    ("values", "q", "want"),
    [
        ([5.0], 50, 5.0),
        ([5.0], 95, 5.0),
        ([1.0, 2.0, 3.0, 4.0], 50, 2.5),
        ([4.0, 1.0, 3.0, 2.0], 50, 2.5),  # order does not matter
        ([1.0, 2.0, 3.0, 4.0], 0, 1.0),
        ([1.0, 2.0, 3.0, 4.0], 100, 4.0),
        ([float(k) for k in range(1, 11)], 95, 9.55),
        ([2.0, 10.0], 95, 9.6),
    ],
)
def test_percentile_is_linear_between_the_closest_ranks(
    values: list[float], q: float, want: float
) -> None:
    got = percentile(values, q)
    assert got == pytest.approx(want), f"p{q} of {values}: got {got}, want {want}"


def test_percentile_agrees_with_statistics_quantiles_inclusive() -> None:
    rng = random.Random(13)
    for n in (2, 3, 8, 9, 20):
        values = [rng.uniform(0.5, 30) for _ in range(n)]
        cuts = statistics.quantiles(values, n=20, method="inclusive")
        assert percentile(values, 50) == pytest.approx(statistics.median(values))
        assert percentile(values, 95) == pytest.approx(cuts[18]), f"n={n}"


def test_percentiles_are_ordered_p50_p95_max() -> None:
    rng = random.Random(8)
    for _ in range(200):
        values = [rng.expovariate(0.2) for _ in range(rng.randint(1, 12))]
        p50, p95 = percentile(values, 50), percentile(values, 95)
        assert min(values) <= p50 <= p95 <= max(values) == percentile(values, 100)


@pytest.mark.parametrize(("values", "q"), [([], 50), ([1.0], -1), ([1.0], 101)])
def test_percentile_refuses_nonsense(values: list[float], q: float) -> None:
    with pytest.raises(ValueError, match=r"no values|not between"):
        percentile(values, q)


def test_throughput_ratio_is_sequential_over_concurrent() -> None:
    assert throughput_ratio(40.0, 20.0) == 2.0
    assert throughput_ratio(13.0, 10.0) == pytest.approx(1.3)
    assert throughput_ratio(10.0, 20.0) == 0.5
    with pytest.raises(ValueError, match="positive"):
        throughput_ratio(10.0, 0.0)


# --- CPU busy from /proc/stat ---------------------------------------------------------

STAT = "cpu  100 20 50 800 30 5 5 0 0 0\ncpu0 50 10 25 400 15 2 3 0 0 0\nintr 1 2 3\n"


def test_proc_stat_busy_is_all_but_idle_and_iowait() -> None:
    times = parse(STAT)
    assert times == Times(busy=100 + 20 + 50 + 5 + 5, total=1010)
    later = Times(busy=times.busy + 150, total=times.total + 200)
    assert busy_percent(times, later) == 75.0
    assert busy_percent(times, times) == 0.0
    with pytest.raises(ValueError, match="no `cpu` line"):
        parse("intr 1 2 3\n")


def test_proc_stat_is_read_on_this_machine() -> None:
    times = parse(Path("/proc/stat").read_text())
    assert 0 < times.busy < times.total


# --- the plan and the command lines ---------------------------------------------------


def _reach() -> Reach:
    return Reach(
        runner_host="tls://127.0.0.1:8443?ca_path=/ca.pem&cert_path=/c.pem&key_path=/c.key",
        cli="/usr/local/bin/dagger",
        registry="127.0.0.1:5443",
        username="pipeline",
        password=PASSWORD,
        ca=Path("/ca.pem"),
    )


def _options(tmp_path: Path, runs: int = 8) -> LoadOptions:
    return LoadOptions(
        runs=runs,
        programs=("helloworld", "age"),
        faults=True,
        work=tmp_path,
        go_image="golang:1.26",
        runtime_image="busybox:1.35",
        reach=_reach(),
    )


def test_the_default_plan_mixes_programs_variants_platforms_and_one_publish() -> None:
    runs = plan(8, ("helloworld", "age"))
    assert [r.index for r in runs] == list(range(1, 9))
    assert {r.program for r in runs} == {"helloworld", "age"}
    assert {r.variant for r in runs} == {"multistage", "builder"}
    assert sum(r.publish for r in runs) == 1
    assert any(len(r.platforms) == 2 for r in runs)
    assert all(len(r.platforms) < 2 for r in runs if r.variant == "builder"), "builder is native"
    assert len({r.name for r in runs}) == 8


def test_the_quick_plan_is_four_hello_world_runs_of_every_kind() -> None:
    runs = plan(4, ("helloworld",))
    assert [r.program for r in runs] == ["helloworld"] * 4
    assert [r.recipe for r in runs] == [
        "helloworld multistage",
        "helloworld builder",
        "helloworld multistage, 2 platforms",
        "helloworld multistage, --publish",
    ]


def test_more_runs_than_the_mix_start_it_again_with_new_names() -> None:
    runs = plan(10, ("helloworld", "age"))
    assert [r.recipe for r in runs[8:]] == [r.recipe for r in runs[:2]]
    assert len({r.name for r in runs}) == 10


def test_every_run_has_its_own_outputs_tests_on_and_quiet(tmp_path: Path) -> None:
    options = _options(tmp_path)
    sources = {"helloworld": tmp_path / "src" / "helloworld", "age": tmp_path / "src" / "age"}
    launcher = Launcher(options, sources, tmp_path / "out" / "concurrent")
    runs = plan(8, options.programs)
    commands = {r.index: launcher.command(r) for r in runs}
    outputs = [c[c.index("--output") + 1] for c in commands.values()]
    reports = [c[c.index("--json") + 1] for c in commands.values()]
    assert len(set(outputs)) == len(set(reports)) == 8
    for run in runs:
        command = commands[run.index]
        assert command[3] == run.variant
        assert "--quiet" in command
        assert "--test" in command
        assert "--no-test" not in command
        assert ("--no-run" in command) == (run.program == "age"), "age without args exits 1"
        base = command[command.index("--runtime-image") + 1]
        assert base == (MULTI_PLATFORM_BASE if len(run.platforms) > 1 else "busybox:1.35")
        assert PASSWORD not in " ".join(command)
    published = [c for c in commands.values() if "--publish" in c]
    assert len(published) == 1
    ref = published[0][published[0].index("--publish") + 1]
    assert ref.startswith("127.0.0.1:5443/load/helloworld:load7-helloworld-concurrent")
    assert published[0][published[0].index("--registry-ca") + 1] == "/ca.pem"


def test_the_runs_environment_names_the_engine_and_holds_no_password(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PIPELINE_PLATFORM", "linux/arm64")
    monkeypatch.setenv(PASSWORD_ENV, PASSWORD)
    monkeypatch.setenv("TESTBED_AUTH_PASSWORD", PASSWORD)
    monkeypatch.setenv("PIPELINE_REGISTRY_MIRROR", "docker.io=127.0.0.1:5000")
    env = environment(_reach(), tmp_path / "src")
    assert env["_EXPERIMENTAL_DAGGER_RUNNER_HOST"].startswith("tls://127.0.0.1:8443?")
    assert env["_EXPERIMENTAL_DAGGER_CLI_BIN"] == "/usr/local/bin/dagger"
    assert env["GIT_CEILING_DIRECTORIES"] == str(tmp_path / "src")
    # No inherited PIPELINE_* but the engine's mirrors (where every run reads its bases).
    assert [k for k in env if k.startswith("PIPELINE_")] == ["PIPELINE_REGISTRY_MIRROR"]
    assert PASSWORD not in env.values()
    assert _reach().address == "tls://127.0.0.1:8443 (mutual TLS)"
    assert PASSWORD not in json.dumps(_options(tmp_path).described())


def test_the_victims_padding_is_go_with_its_nonce() -> None:
    source = padding("n0nce", cases=3)
    assert source.startswith("package main\n")
    assert 'var _ = "load victim n0nce"' in source
    assert source.count("\tcase ") == 3


# --- the checks, on made-up passes ----------------------------------------------------


def _pass(name: str, walls: list[float], digests: list[str], **extra: Any) -> Pass:
    concurrent = name in ("concurrent", "fault")
    start = 0.0
    runs = []
    for index, (wall, digest) in enumerate(zip(walls, digests, strict=True), start=1):
        runs.append(
            RunSample(
                index=index,
                start=0.0 if concurrent else start,
                seconds=wall,
                returncode=0,
                digest=digest,
                cache="warm",
                steps={"build": wall / 4, "export": wall / 4},
            )
        )
        start += wall
    return Pass(
        name=name,
        concurrent=concurrent,
        timed=name != "warm-up",
        seconds=max(walls) if concurrent else sum(walls),
        cpu_busy=extra.get("cpu", 95.0),
        cpu_samples=((0.5, 90.0),),
        runs=tuple(runs),
    )


def _results(
    concurrent_walls: list[float],
    *,
    concurrent_digests: list[str] | None = None,
    victim: Victim | None = None,
) -> LoadResults:
    digests = ["sha256:a", "sha256:b", "sha256:c"]
    passes = [
        _pass("warm-up", [9.0, 9.0, 9.0], digests),
        _pass("sequential", [3.0, 4.0, 5.0], digests),
        _pass("concurrent", concurrent_walls, concurrent_digests or digests),
    ]
    if victim is not None:
        passes.append(_pass("fault", [8.0, 9.0, 10.0], digests))
    return LoadResults(
        started="2026-11-29T10:00:00+00:00",
        seconds=60.0,
        command="python -m bench load",
        options={},
        machine={"cpu_count": 2, "cpu_busy_before": 1.0},
        warm="warm",
        runs=tuple(
            Planned(i, f"load{i}-helloworld", "helloworld", "multistage") for i in (1, 2, 3)
        ),
        passes=tuple(passes),
        victim=victim,
    )


def _victim(**changes: Any) -> Victim:
    fields: dict[str, Any] = {
        "description": "victim",
        "command": "-m pipeline multistage",
        "started": 0.0,
        "build_started": 2.0,
        "killed": 2.5,
        "returncode": -9,
        "build_done": False,
        "leftover": (),
    }
    return Victim(**(fields | changes))


def _verdicts(results: LoadResults) -> dict[str, bool]:
    return {c.name: c.passed for c in results.checks()}


def test_a_good_run_passes_every_check() -> None:
    results = _results([6.0, 7.0, 8.0], victim=_victim())
    verdicts = _verdicts(results)
    assert all(verdicts.values()), verdicts
    assert len(verdicts) == 9
    speed = results.throughput()
    assert speed is not None
    assert speed.ratio == pytest.approx(12.0 / 8.0)
    assert results.why() == [], "no why when the goal is met"
    assert results.passed()
    summary = {s.name: s for s in results.summary()}
    assert summary["sequential"].p50 == 4.0
    assert summary["concurrent"].p95 == pytest.approx(7.9)
    assert summary["concurrent"].max == 8.0


def test_the_breakdown_adds_up_to_the_runs_wall_times() -> None:
    results = _results([6.0, 7.0, 8.0])
    rows = {r.step: r for r in results.breakdown()}
    assert list(rows) == ["build", "export", OTHER]
    assert sum(r.sequential for r in rows.values()) == pytest.approx(12.0)
    assert sum(r.concurrent for r in rows.values()) == pytest.approx(21.0)
    assert rows["build"].ratio == pytest.approx(21.0 / 12.0)


def test_under_the_goal_says_why_but_does_not_fail_the_run() -> None:
    results = _results([10.0, 10.0, 11.0])
    verdicts = _verdicts(results)
    assert not verdicts["throughput at least 1.3x sequential"]
    assert results.passed(), "the throughput goal is reported, not enforced"
    why = results.why()
    assert why[0].startswith("CPU busy (all 2 CPUs, /proc/stat): 95% one at a time, 95% at once")
    assert "saturated" in why[0]
    assert "the steps that grew most" in why[1]


def test_a_digest_that_differs_from_its_run_alone_fails() -> None:
    results = _results([6.0, 7.0, 8.0], concurrent_digests=["sha256:a", "sha256:x", "sha256:c"])
    assert not _verdicts(results)["every digest that of its run alone"]
    assert not results.passed()
    assert [row[4] for row in results.digest_rows()] == [True, False, True]


@pytest.mark.parametrize(
    ("victim", "failing"),
    [
        (_victim(build_done=True), "fault: a client SIGKILLed mid-build"),
        (_victim(killed=None, returncode=1), "fault: a client SIGKILLed mid-build"),
        (_victim(killed=None, returncode=1), "fault: the others were running when it died"),
        (_victim(killed=11.0), "fault: the others were running when it died"),
        (_victim(leftover=("42 dagger",)), "fault: the killed client left no process behind"),
    ],
)
def test_each_fault_check_can_fail(victim: Victim, failing: str) -> None:
    verdicts = _verdicts(_results([6.0, 7.0, 8.0], victim=victim))
    assert verdicts[failing] is False, verdicts


def test_the_json_has_every_run_and_no_surprises() -> None:
    data = _results([6.0, 7.0, 8.0], victim=_victim()).to_json()
    assert data["kind"] == "load"
    assert [p["name"] for p in data["passes"]] == ["warm-up", "sequential", "concurrent", "fault"]
    assert all(len(p["runs"]) == 3 for p in data["passes"])
    assert data["throughput"]["ratio"] == 1.5
    assert data["throughput"]["met"] is True
    json.dumps(data)  # all of it serialisable


# --- the command line -----------------------------------------------------------------


def _resolve_load(**overrides: Any) -> LoadOptions:
    given: dict[str, Any] = {
        "runs": None,
        "quick": False,
        "faults": True,
        "work": Path("bench/.work"),
        "engine": _reach().runner_host,
        "dagger_cli": "/usr/local/bin/dagger",
        "registry": "127.0.0.1:5443",
        "registry_username": "pipeline",
        "registry_password": PASSWORD,
        "registry_ca": Path("/ca.pem"),
        "go_image": "golang:1.26",
        "runtime_image": "busybox:1.35",
    }
    return resolve_load(**(given | overrides))


def test_load_defaults_and_quick() -> None:
    full, quick = _resolve_load(), _resolve_load(quick=True)
    assert (full.runs, full.programs, full.faults) == (8, ("helloworld", "age"), True)
    assert (quick.runs, quick.programs, quick.quick) == (4, ("helloworld",), True)
    assert _resolve_load(runs=3).runs == 3


@pytest.mark.parametrize(
    ("overrides", "said"),
    [
        ({"quick": True, "runs": 5}, "drop --runs"),
        ({"engine": None}, "which engine?"),
        ({"registry_password": None}, "--registry-password"),
    ],
)
def test_load_refuses_what_it_cannot_run(overrides: dict[str, Any], said: str) -> None:
    with pytest.raises(typer.BadParameter, match=said):
        _resolve_load(**overrides)


def test_no_registry_needed_when_no_run_publishes() -> None:
    options = _resolve_load(runs=3, registry=None, registry_password=None)
    assert options.reach.registry == ""


def test_load_without_an_engine_exits_2_before_any_work(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "TESTBED_ENGINE_TLS_HOST"}
    done = _bench("load", "--quick", f"--json={tmp_path / 'load.json'}", env=env)
    assert done.returncode == 2, f"got exit {done.returncode}, want 2: {done.stderr}"
    assert "which engine?" in done.stderr
    assert not (tmp_path / "load.json").exists()


def test_bench_options_before_load_are_refused() -> None:
    done = _bench("--quick", "load", env={**os.environ, "COLUMNS": "200"})
    assert done.returncode == 2, done.stderr
    assert "--quick: not an option of `load`" in done.stderr


def test_the_recorded_command_hides_the_password() -> None:
    argv = ["load", "--registry-password", PASSWORD, f"--registry-password={PASSWORD}"]
    assert masked(argv) == ["load", "--registry-password", "***", "--registry-password=***"]


# --- the real thing -------------------------------------------------------------------


@pytest.fixture(name="tls_engine_env")
def fixture_tls_engine_env(engine_env: dict[str, str], testbed: Testbed) -> dict[str, str]:
    """The test bed's environment, where its engine answers over mutual TLS."""
    host = testbed.env.get("TESTBED_ENGINE_TLS_HOST", "")
    runner = Address.parse(host)
    why = runner.probe() if runner else "no TESTBED_ENGINE_TLS_HOST in tests/testbed/env"
    if why is not None:
        pytest.skip(f"{NO_ENGINE} (the engine over mutual TLS: {why})")
    return {**engine_env, "COLUMNS": "200"}


@pytest.mark.engine
def test_a_quick_load_run_against_the_engine_over_mutual_tls(
    tls_engine_env: dict[str, str], testbed: Testbed, tmp_path: Path
) -> None:
    """4 hello-world runs, one after another and at once, then the fault pass: no failure,
    every digest that of its run alone, percentiles in order, a ratio, every fault check
    PASS, and the registry's password nowhere."""
    report, markdown = tmp_path / "load.json", tmp_path / "load.md"
    done = _bench(
        "load",
        "--quick",
        f"--json={report}",
        f"--markdown={markdown}",
        f"--work={tmp_path / 'work'}",
        env=tls_engine_env,
        timeout=1200,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    data = json.loads(report.read_text())
    assert data["kind"] == "load"
    assert [r["program"] for r in data["runs"]] == ["helloworld"] * 4
    assert sum(r["publish"] for r in data["runs"]) == 1
    assert [p["name"] for p in data["passes"]] == ["warm-up", "sequential", "concurrent", "fault"]
    for one in data["passes"]:
        assert len(one["runs"]) == 4, one["name"]
        assert one["cpu"]["samples"], f"no CPU samples in {one['name']}"
        assert all(0 <= busy <= 100 for _, busy in one["cpu"]["samples"])
    summary = {s["pass"]: s for s in data["summary"]}
    for name in ("sequential", "concurrent", "fault"):
        s = summary[name]
        assert s["failed"] == 0, f"{name}: {s['failed']} failed"
        assert 0 < s["p50"] <= s["p95"] <= s["max"], f"{name}: {s}"
    digests = data["digests"]
    assert len(digests) == 4
    assert all(d["equal"] for d in digests), digests
    assert all(d["alone"] == d["concurrent"] == d["fault"] for d in digests)
    assert all(d["alone"].startswith("sha256:") for d in digests)
    assert data["throughput"]["ratio"] > 0
    checks = {c["name"]: c for c in data["checks"]}
    enforced = [c for c in data["checks"] if c["enforced"]]
    assert all(c["passed"] for c in enforced), [c for c in enforced if not c["passed"]]
    assert checks["fault: a client SIGKILLed mid-build"]["passed"]
    assert data["victim"]["returncode"] == -9
    assert data["victim"]["build_started"] < data["victim"]["killed"]
    assert data["machine"]["engine_address"] == "tls://127.0.0.1:8443 (mutual TLS)"
    text = markdown.read_text()
    assert "## Checks" in text
    assert "PASS" in text
    password = testbed.env["TESTBED_AUTH_PASSWORD"]
    for where, said in (("json", report.read_text()), ("md", text), ("stdout", done.stdout)):
        assert password not in said, f"the password is in the {where}"
    assert password not in done.stderr
