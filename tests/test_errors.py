"""Bad input and faults, each through the real command (against the real engine and test
bed, except where the case is that one is missing; bad input refused before any engine work
runs the command in this process, with no engine): the exit code, the one line that says
what is wrong, and what is left on disk. Errors cross into exit codes at one place, the CLI:
2 for bad usage, 1 for failures, 130 for interrupts."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import tarfile
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from pipeline.cli import commands
from tests.conftest import ROOT, PipelineRunner, Ran, Testbed, go_tests, started

FAST = ("--no-test", "--runtime-image", "busybox:1.35")


def in_process(*args: str) -> Ran:
    """The command run in this process (typer's CliRunner), for bad input that is refused
    before any engine work: no engine needed (none is in reach, should a check let it by)."""
    env = {"_EXPERIMENTAL_DAGGER_RUNNER_HOST": "unix:///nonexistent.sock"}
    result = CliRunner().invoke(commands.app, list(args), env=env)
    return Ran(result.exit_code, result.stdout, result.stderr)


def error_line(ran: Ran) -> str:
    """The one `error:` line, and no traceback."""
    assert "Traceback" not in ran.stderr, ran.stderr
    lines = [line for line in ran.stderr.splitlines() if line.startswith("error: ")]
    assert len(lines) == 1, ran.stderr
    return lines[0]


def go_tree(root: Path, files: dict[str, str]) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "go.mod").write_text("module example.com/t\n\ngo 1.26\n")
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


HELLO = 'package main\n\nimport "fmt"\n\nfunc main() { fmt.Println("Hello World") }\n'


def snapshot(*dirs: Path) -> dict[str, int]:
    return {
        str(p): p.stat().st_size for d in dirs if d.exists() for p in d.rglob("*") if p.is_file()
    }


# 1 --------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("make", "message"),
    [
        ("missing", "no such directory"),
        ("file", "not a directory"),
        ("empty", "the directory is empty"),
        ("library", "is `package lib`, not a main package"),
    ],
)
def test_source_refused_before_any_engine_work(tmp_path: Path, make: str, message: str) -> None:
    source = tmp_path / "src"
    if make == "file":
        source.write_text("package main\n")
    elif make == "empty":
        source.mkdir()
    elif make == "library":
        go_tree(source, {"lib.go": "package lib\n"})
    # No engine in reach (in_process): an engine call would fail differently, and later.
    ran = in_process("multistage", "--source", str(source), "--output", str(tmp_path / "o.tar"))
    assert ran.returncode == 2
    assert message in error_line(ran)
    assert not (tmp_path / "o.tar").exists()


# 2, 3 -----------------------------------------------------------------------------------
@pytest.mark.engine
def test_compile_error_shows_the_compiler(pipeline: PipelineRunner, tmp_path: Path) -> None:
    source = go_tree(tmp_path / "src", {"main.go": "package main\n\nfunc main() { undefined() }\n"})
    ran = pipeline("multistage", *FAST, "--source", str(source), "--no-output")
    assert ran.returncode == 1
    assert "./main.go:3:15: undefined: undefined" in ran.stderr
    assert "`go build -trimpath -buildvcs=false -ldflags=-s -w -o /out/helloworld .` failed" in (
        error_line(ran)
    )


@pytest.mark.engine
def test_failing_go_test_shows_its_output(pipeline: PipelineRunner, tmp_path: Path) -> None:
    source = go_tree(
        tmp_path / "src",
        {
            "main.go": HELLO,
            "main_test.go": 'package main\n\nimport "testing"\n\n'
            'func TestNo(t *testing.T) { t.Fatalf("got %d, want %d", 1, 2) }\n',
        },
    )
    ran = pipeline(
        "multistage", "--runtime-image", "busybox:1.35", "--source", str(source), "--no-output"
    )
    assert ran.returncode == 1
    assert "--- FAIL: TestNo" in ran.stderr
    assert "main_test.go:5: got 1, want 2" in ran.stderr
    assert "`go test ./...` failed with exit code 1" in error_line(ran)


# 4, 5 -----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--platform", "linux/"), "--platform 'linux/' is malformed"),
        (("--platform", "amd64"), "--platform 'amd64' is malformed"),
        (("--platform", "linux/mips"), "Go does not cross-compile to 'mips'"),
        (("--go-image", "golang::1"), "--go-image 'golang::1' is not an image reference"),
        (("--runtime-image", "UPPER:1"), "--runtime-image 'UPPER:1'"),
        (("--publish", "127.0.0.1:5000/x:bad tag"), "--publish '127.0.0.1:5000/x:bad tag'"),
    ],
)
def test_bad_platform_or_reference_exits_2(
    tmp_path: Path, args: tuple[str, ...], message: str
) -> None:
    ran = in_process("multistage", *args, "--output", str(tmp_path / "o.tar"))
    assert ran.returncode == 2
    assert message in error_line(ran)
    assert list(tmp_path.iterdir()) == []


# 6, 7, 8 --------------------------------------------------------------------------------
@pytest.mark.engine
def test_missing_base_image_is_named(pipeline: PipelineRunner, testbed: Testbed) -> None:
    missing = f"{testbed.registry}/library/nosuchbase:9"
    ran = pipeline("multistage", "--no-test", "--runtime-image", missing, "--no-output")
    assert ran.returncode == 1
    assert error_line(ran).startswith(f"error: image {missing} not found")


@pytest.mark.engine
def test_unreachable_registry_is_named(pipeline: PipelineRunner) -> None:
    started = time.monotonic()
    ran = pipeline(
        "multistage", *FAST, "--no-output", "--no-run", "--publish", "127.0.0.1:5999/team/hello:1"
    )
    assert ran.returncode == 1
    assert "error: registry 127.0.0.1:5999 unreachable (connection refused)" in error_line(ran)
    assert time.monotonic() - started < 120


@pytest.mark.engine
def test_wrong_credentials(pipeline: PipelineRunner, testbed: Testbed, tmp_path: Path) -> None:
    wrong = "not-the-password-" + os.urandom(6).hex()
    ran = pipeline(
        "multistage",
        *FAST,
        "--no-output",
        "--no-run",
        "--json",
        str(tmp_path / "r.json"),
        "--publish",
        f"{testbed.auth_registry}/team/hello:1",
        "--registry-username",
        "pipeline",
        "--registry-ca",
        testbed["TESTBED_CA"],
        extra_env={"PIPELINE_REGISTRY_PASSWORD": wrong},
    )
    assert ran.returncode == 1
    assert error_line(ran).startswith(f"error: authentication failed for {testbed.auth_registry}")
    assert wrong not in ran.stdout + ran.stderr
    assert not (tmp_path / "r.json").exists()


# 9 --------------------------------------------------------------------------------------
def test_output_is_a_directory(tmp_path: Path) -> None:
    ran = in_process("multistage", *FAST, "--output", str(tmp_path))
    assert ran.returncode == 1
    assert f"--output {tmp_path} is a directory" in error_line(ran)
    assert list(tmp_path.iterdir()) == []


def in_private_mount(mount: str) -> tuple[str, ...]:
    """Run the command with a tmpfs mounted (this test's own mount namespace only)."""
    return (
        "unshare",
        "--mount",
        "--propagation",
        "private",
        "sh",
        "-ec",
        f'{mount}; exec "$@"',
        "sh",
    )


@pytest.mark.engine
def test_output_directory_not_writable(pipeline: PipelineRunner, tmp_path: Path) -> None:
    locked = tmp_path / "locked"
    locked.mkdir()
    ran = pipeline(
        "multistage",
        *FAST,
        "--output",
        str(locked / "image.tar"),
        prefix=in_private_mount(f"mount -t tmpfs -o ro tmpfs {locked}"),
    )
    assert ran.returncode == 1
    assert "permission denied" in error_line(ran)
    assert list(locked.iterdir()) == []


# 10 -------------------------------------------------------------------------------------
@pytest.mark.engine
def test_no_engine_says_how_to_get_one(pipeline: PipelineRunner, tmp_path: Path) -> None:
    env = {k: v for k, v in pipeline.env.items() if "DAGGER" not in k}
    env["PATH"] = "/usr/bin:/bin"  # no dagger CLI either
    done = subprocess.run(
        pipeline.command("multistage", *FAST, "--output", str(tmp_path / "o.tar")),
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    ran = Ran(done.returncode, done.stdout, done.stderr)
    assert ran.returncode == 1
    line = error_line(ran)
    assert "no Dagger engine reachable" in line
    assert "dagger run" in line
    assert "tests/testbed/up" in line
    assert not (tmp_path / "o.tar").exists()


# 11 -------------------------------------------------------------------------------------
@pytest.mark.alone
@pytest.mark.engine
def test_interrupt_leaves_nothing_half_done(pipeline: PipelineRunner, tmp_path: Path) -> None:
    source = go_tree(
        tmp_path / "src",
        {
            "main.go": HELLO,
            # A test that takes long and is new each time: the build is mid-way at ^C.
            "slow_test.go": 'package main\n\nimport (\n\t"testing"\n\t"time"\n)\n\n'
            "func TestSlow(t *testing.T) { time.Sleep(60 * time.Second) }"
            f" // {os.urandom(4).hex()}\n",
        },
    )
    output = tmp_path / "out" / "image.tar"
    output.parent.mkdir()
    output.write_bytes(b"the previous good tarball")
    before = snapshot(ROOT / "build")
    tests_before = go_tests()
    with started(
        pipeline.command(
            "builder",
            "--runtime-image",
            "busybox:1.35",
            "--source",
            str(source),
            "--output",
            str(output),
        ),
        cwd=ROOT,
        env=pipeline.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    ) as process:
        deadline = time.monotonic() + 120
        while not go_tests() - tests_before:  # mid-way: in its slow go test
            assert process.poll() is None, process.communicate()
            assert time.monotonic() < deadline, "the build never reached its go test"
            time.sleep(0.2)
        time.sleep(1)
        os.killpg(process.pid, signal.SIGINT)  # what ^C in a terminal does
        _, stderr = process.communicate(timeout=120)
    assert process.returncode == 130, stderr
    assert "Traceback" not in stderr
    assert output.read_bytes() == b"the previous good tarball"
    assert sorted(p.name for p in output.parent.iterdir()) == ["image.tar"]
    assert snapshot(ROOT / "build") == before


# 12 -------------------------------------------------------------------------------------
@pytest.mark.engine
def test_two_runs_on_one_output(pipeline: PipelineRunner, testbed: Testbed, tmp_path: Path) -> None:
    output = tmp_path / "image.tar"
    with contextlib.ExitStack() as stack:
        runs = [
            stack.enter_context(
                started(
                    pipeline.command("multistage", *FAST, "--output", str(output)),
                    cwd=ROOT,
                    env=pipeline.env,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            )
            for _ in range(2)
        ]
        codes = [run.wait(timeout=300) for run in runs]
    assert codes == [0, 0]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["image.tar", "image.tar.spdx.json"]
    assert testbed.skopeo("inspect", f"oci-archive:{output}").returncode == 0
    with tarfile.open(output) as tar:
        assert "index.json" in tar.getnames()


# 13 -------------------------------------------------------------------------------------
@pytest.mark.engine
def test_disk_full_while_exporting(pipeline: PipelineRunner, tmp_path: Path) -> None:
    small = tmp_path / "small"
    small.mkdir()
    ran = pipeline(
        "multistage",
        *FAST,
        "--output",
        str(small / "image.tar"),
        prefix=in_private_mount(f"mount -t tmpfs -o size=256k tmpfs {small}"),
    )
    assert ran.returncode == 1
    assert "no space left" in error_line(ran).lower()
    assert list(small.iterdir()) == []


# 14 -------------------------------------------------------------------------------------
@pytest.mark.engine
def test_odd_trees(pipeline: PipelineRunner, tmp_path: Path) -> None:
    """A 200 MB file the build does not read (not uploaded: test_stages checks what is), a
    file whose name is not UTF-8: both ignored, the build works. A Go file that is a symlink
    out of the tree: refused before any engine work."""
    source = go_tree(tmp_path / "src", {"main.go": HELLO})
    with (source / "video.bin").open("wb") as big:
        big.truncate(200 * 1024 * 1024)
    (source / os.fsdecode(b"caf\xe9.txt")).write_text("latin-1 name")
    started = time.monotonic()
    ran = pipeline(
        "multistage",
        *FAST,
        "--source",
        str(source),
        "--no-output",
        "--json",
        str(tmp_path / "r.json"),
    )
    assert ran.returncode == 0, ran.stderr
    assert json.loads((tmp_path / "r.json").read_text())["printed"] == "Hello World\n"
    assert time.monotonic() - started < 60
    (tmp_path / "outside.go").write_text("package main\n")
    (source / "linked.go").symlink_to(tmp_path / "outside.go")
    ran = pipeline("multistage", *FAST, "--source", str(source), "--no-output")
    assert ran.returncode == 2
    assert "linked.go -> " in error_line(ran)
    assert "symlink out of the tree" in error_line(ran)


# the password, everywhere ----------------------------------------------------------------
@pytest.mark.engine
def test_password_appears_nowhere(
    pipeline: PipelineRunner, testbed: Testbed, tmp_path: Path
) -> None:
    password = testbed["TESTBED_AUTH_PASSWORD"]
    report = ROOT / "build" / "password-test.json"
    ran = pipeline(
        "builder",
        "--runtime-image",
        "busybox:1.35",
        "--json",
        str(report),
        "--verbose",
        "--publish",
        f"{testbed.auth_registry}/team/secret:1",
        "--registry-username",
        testbed["TESTBED_AUTH_USER"],
        "--registry-ca",
        testbed["TESTBED_CA"],
        extra_env={"PIPELINE_REGISTRY_PASSWORD": password},
    )
    assert ran.returncode == 0, ran.stderr
    assert password not in ran.stdout
    assert password not in ran.stderr
    assert password not in report.read_text()
    needle = password.encode()
    for path in [*ROOT.rglob("*")]:
        if (
            path.is_file()
            and ".venv" not in path.parts
            and path.name != "env"
            and ".git" not in path.parts
        ):
            assert needle not in path.read_bytes(), f"the password is in {path}"
    report.unlink()


@pytest.mark.engine
def test_verbose_shows_the_traceback(pipeline: PipelineRunner, testbed: Testbed) -> None:
    missing = f"{testbed.registry}/library/nosuchbase:9"
    ran = pipeline(
        "multistage", "--no-test", "--runtime-image", missing, "--no-output", "--verbose"
    )
    assert ran.returncode == 1
    assert "Traceback" in ran.stderr
    assert f"error: image {missing} not found" in ran.stderr
