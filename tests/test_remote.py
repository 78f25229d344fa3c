"""pipeline.registry.remote against the test bed's real registries (plain, TLS + htpasswd, and token
auth as hosted registries do it), and the pipeline's --publish through it:
- builder and multistage, one and two platforms, with their SBOM referrer, and naive, publish
  to the token registry and pull back by digest with skopeo (its own token flow);
- 429 with Retry-After is waited out, within the deadline; a wait past it fails in one line;
- a registry that accepts connections and never answers ends the push within its bound, and
  the run exits, with one line and no thread keeping the process alive; so does ^C;
- a login-only registry without a login is refused before any push; --registry-ca is added
  to the system's CAs.
The faults come from real servers in this process: a socket that never answers, and a proxy
in front of the real registry that answers some requests itself (429, 500)."""

from __future__ import annotations

import contextlib
import hashlib
import json
import signal
import socket
import subprocess
import sys
import tarfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import requests

from pipeline.errors import RegistryError
from pipeline.refs import parse_image_ref
from pipeline.registry.access import Deadline, Login
from pipeline.registry.remote import push_image
from pipeline.settings import Secret
from tests.conftest import ROOT, PipelineRunner, Testbed, started, unique
from tests.layouts import tiny_layout
from tests.proxy import faulty_proxy

SPDX = "application/spdx+json"
CREATED = "2023-11-14T22:13:20Z"


@contextlib.contextmanager
def silent_server() -> Iterator[int]:
    """A TCP port that accepts connections and never answers; its port."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            with contextlib.suppress(TimeoutError, OSError):
                held.append(listener.accept()[0])

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1]
    finally:
        stop.set()
        thread.join()
        for connection in held:
            connection.close()
        listener.close()


def test_429_with_retry_after_is_waited_out(inside: Testbed, tmp_path: Path) -> None:
    tarball = tmp_path / "image.tar"
    digest = tiny_layout(tarball, "hello:1", unique().encode())
    left = [2]

    def busy(method: str, path: str) -> tuple[int, dict[str, str]] | None:
        if method == "POST" and "/blobs/uploads/" in path and left[0] > 0:
            left[0] -= 1
            return 429, {"Retry-After": "1"}
        return None

    with faulty_proxy(inside.registry, busy) as (proxy, answered):
        ref = parse_image_ref(f"{proxy}/retry/hello:1", option="--publish")
        start = time.monotonic()
        pushed, _ = push_image(
            tarball,
            ref,
            Login(None, None, None),
            Deadline.of(60),
            ref_name="hello:1",
            digest=digest,
        )
        took = time.monotonic() - start
    assert pushed == f"{proxy}/retry/hello:1@{digest}"
    assert len(answered) == 2, answered
    assert took >= 2.0, f"did not wait the Retry-After: {took:.2f}s"


def test_a_wait_longer_than_the_budget_fails_at_once(inside: Testbed, tmp_path: Path) -> None:
    tarball = tmp_path / "image.tar"
    digest = tiny_layout(tarball, "hello:1", unique().encode())

    def slow_down(method: str, path: str) -> tuple[int, dict[str, str]] | None:
        return (429, {"Retry-After": "3600"}) if method == "POST" else None

    with faulty_proxy(inside.registry, slow_down) as (proxy, _):
        ref = parse_image_ref(f"{proxy}/retry/hello:1", option="--publish")
        start = time.monotonic()
        with pytest.raises(RegistryError, match=r"asks to wait 3600s \(HTTP 429\)"):
            push_image(
                tarball,
                ref,
                Login(None, None, None),
                Deadline.of(60),
                ref_name="hello:1",
                digest=digest,
            )
    assert time.monotonic() - start < 5


def test_a_registry_that_never_answers_ends_within_the_budget(tmp_path: Path) -> None:
    tarball = tmp_path / "image.tar"
    digest = tiny_layout(tarball, "hello:1", b"hello")
    with silent_server() as port:
        ref = parse_image_ref(f"127.0.0.1:{port}/silent/hello:1", option="--publish")
        start = time.monotonic()
        with pytest.raises(RegistryError, match=r"did not (answer|finish the push) in time"):
            push_image(
                tarball,
                ref,
                Login(None, None, None),
                Deadline.of(3),
                ref_name="hello:1",
                digest=digest,
            )
        took = time.monotonic() - start
    assert took < 3 + 2, f"took {took:.1f}s for a 3 s deadline"


def test_a_stopped_push_sends_nothing_more(tmp_path: Path) -> None:
    deadline = Deadline.of(60)
    deadline.stop.set()
    tarball = tmp_path / "image.tar"
    digest = tiny_layout(tarball, "hello:1", b"hello")
    ref = parse_image_ref("127.0.0.1:9/stopped/hello:1", option="--publish")
    with pytest.raises(RegistryError, match="stopped"):
        push_image(
            tarball, ref, Login(None, None, None), deadline, ref_name="hello:1", digest=digest
        )


def test_a_login_only_registry_without_a_login_is_refused_before_any_push(
    inside: Testbed, tmp_path: Path
) -> None:
    tarball = tmp_path / "image.tar"
    digest = tiny_layout(tarball, "hello:1", b"hello")
    for registry in (inside.auth_registry, inside["TESTBED_TOKEN_REGISTRY"]):
        ref = parse_image_ref(f"{registry}/nologin/hello:1", option="--publish")
        start = time.monotonic()
        with pytest.raises(RegistryError, match="wants a login: give --registry-username"):
            push_image(
                tarball,
                ref,
                Login(None, None, Path(inside["TESTBED_CA"])),
                Deadline.of(60),
                ref_name="hello:1",
                digest=digest,
            )
        assert time.monotonic() - start < 5


def test_a_pull_token_is_never_reused_for_a_push(inside: Testbed, tmp_path: Path) -> None:
    """oras asked once, for pull, and sent that token with the upload (401 on Docker Hub)."""
    tarball = tmp_path / "image.tar"
    digest = tiny_layout(tarball, "hello:1", unique().encode())
    repository = f"token/{unique()}"
    ref = parse_image_ref(f"{inside['TESTBED_TOKEN_REGISTRY']}/{repository}:1", option="-")
    login = Login(
        inside["TESTBED_AUTH_USER"],
        Secret(inside["TESTBED_AUTH_PASSWORD"]),
        Path(inside["TESTBED_CA"]),
    )
    log = Path(inside["TESTBED_TOKEN_LOG"])
    before = len(log.read_text().splitlines())
    pushed, _ = push_image(tarball, ref, login, Deadline.of(60), ref_name="hello:1", digest=digest)
    assert pushed.endswith(f"{repository}:1@{digest}")
    asked = [json.loads(line) for line in log.read_text().splitlines()[before:]]
    ours = [a for a in asked if any(repository in s for s in a.get("scopes", []))]
    assert ours, "no token was asked for the repository"
    assert all(
        {"type": "repository", "name": repository, "actions": ["pull", "push"]} in a["granted"]
        for a in ours
    ), ours


@pytest.mark.parametrize("where", ["plain", "token"])
def test_a_blob_another_repository_has_is_mounted_not_sent(
    inside: Testbed, tmp_path: Path, where: str
) -> None:
    """A base's layer, in the base's repository on the same registry: the push mounts it
    (its token asks to read that repository too) and sends only what the registry lacks."""
    tarball = tmp_path / "image.tar"
    digest = tiny_layout(tarball, "hello:1", unique().encode() * 5000)
    with tarfile.open(tarball) as tar:
        index = json.loads(tar.extractfile("index.json").read())  # type: ignore[union-attr]
        manifest = json.loads(
            tar.extractfile(f"blobs/sha256/{digest.removeprefix('sha256:')}").read()  # type: ignore[union-attr]
        )
    assert index["manifests"][0]["digest"] == digest
    layer, config = manifest["layers"][0], manifest["config"]
    if where == "plain":
        registry, login = inside.registry, Login(None, None, None)
    else:
        registry = inside["TESTBED_TOKEN_REGISTRY"]
        password = Secret(inside["TESTBED_AUTH_PASSWORD"])
        login = Login(inside["TESTBED_AUTH_USER"], password, Path(inside["TESTBED_CA"]))
    base, ours = f"mount/base-{unique()}", f"mount/app-{unique()}"
    refs = [parse_image_ref(f"{registry}/{r}:1", option="-") for r in (base, ours)]
    _, first = push_image(
        tarball, refs[0], login, Deadline.of(60), ref_name="hello:1", digest=digest
    )
    assert first == layer["size"] + config["size"]
    log = Path(inside["TESTBED_TOKEN_LOG"])
    before = len(log.read_text().splitlines())
    _, sent = push_image(
        tarball, refs[1], login, Deadline.of(60), ref_name="hello:1", digest=digest,
        mounts={layer["digest"]: base},
    )  # fmt: skip
    assert sent == config["size"]  # the layer was mounted: the config alone was sent
    pulled = inside.skopeo(
        "inspect", "--raw", "--tls-verify=false", f"docker://{registry}/{ours}:1"
    )
    if where == "plain":
        assert pulled.returncode == 0, pulled.stderr
        assert json.loads(pulled.stdout)["layers"] == [layer]
    else:
        asked = [json.loads(line) for line in log.read_text().splitlines()[before:]]
        read = {"type": "repository", "name": base, "actions": ["pull"]}
        assert any(read in a["granted"] for a in asked), asked


# --- the pipeline's --publish, against the real engine -----------------------------------


def _token_login(testbed: Testbed) -> tuple[list[str], dict[str, str]]:
    args = ["--registry-username", testbed["TESTBED_AUTH_USER"]]
    args += ["--registry-ca", testbed["TESTBED_CA"]]
    return args, {"PIPELINE_REGISTRY_PASSWORD": testbed["TESTBED_AUTH_PASSWORD"]}


def _skopeo_raw(testbed: Testbed, reference: str) -> subprocess.CompletedProcess[str]:
    creds = f"{testbed['TESTBED_AUTH_USER']}:{testbed['TESTBED_AUTH_PASSWORD']}"
    return testbed.skopeo(
        "inspect", "--raw", "--creds", creds, "--cert-dir", testbed["TESTBED_CERTS_DIR"],
        f"docker://{reference}",
    )  # fmt: skip


@pytest.mark.engine
@pytest.mark.parametrize(
    ("variant", "platforms"),
    [
        ("multistage", ()),
        ("multistage", ("linux/amd64", "linux/arm64")),
        ("builder", ()),  # the builder pattern runs on the engine's platform only
    ],
)
def test_publish_to_a_token_registry_and_pull_back_by_digest(
    pipeline: PipelineRunner,
    testbed: Testbed,
    tmp_path: Path,
    variant: str,
    platforms: tuple[str, ...],
) -> None:
    registry = testbed["TESTBED_TOKEN_REGISTRY"]
    reference = f"{registry}/team/{variant}-{len(platforms)}:{unique()}"
    login, env = _token_login(testbed)
    report = tmp_path / "run.json"
    platform_args = [a for p in platforms for a in ("--platform", p)]
    ran = pipeline(
        variant, "--no-test", "--no-run", "--runtime-image", "scratch", "--publish", reference,
        *login, *platform_args, "--json", str(report), extra_env=env,
    )  # fmt: skip
    assert ran.returncode == 0, ran.stderr
    image = json.loads(report.read_text())["images"][0]
    assert image["published"] == f"{reference}@{image['digest']}"
    raw = _skopeo_raw(testbed, f"{reference.rsplit(':', 1)[0]}@{image['digest']}")
    assert raw.returncode == 0, raw.stderr
    assert "sha256:" + hashlib.sha256(raw.stdout.encode()).hexdigest() == image["digest"]
    if platforms:
        listed = json.loads(raw.stdout)["manifests"]
        got = {f"{m['platform']['os']}/{m['platform']['architecture']}" for m in listed}
        assert got == set(platforms)
    referrers = _skopeo_raw(testbed, f"{reference.rsplit(':', 1)[0]}:{image['sbom_tag']}")
    assert referrers.returncode == 0, referrers.stderr
    assert [m["artifactType"] for m in json.loads(referrers.stdout)["manifests"]] == [SPDX]
    assert testbed["TESTBED_AUTH_PASSWORD"] not in ran.stdout + ran.stderr


@pytest.mark.engine
def test_naive_publishes_with_registry_ca_through_the_same_path(
    pipeline: PipelineRunner, testbed: Testbed, tmp_path: Path
) -> None:
    reference = f"{testbed['TESTBED_TOKEN_REGISTRY']}/team/naive:{unique()}"
    login, env = _token_login(testbed)
    report = tmp_path / "run.json"
    ran = pipeline(
        "naive", "--no-test", "--no-run", "--no-output", "--publish", reference, *login,
        "--json", str(report), extra_env=env,
    )  # fmt: skip
    assert ran.returncode == 0, ran.stderr
    image = json.loads(report.read_text())["images"][0]
    assert image["published"] == f"{reference}@{image['digest']}"  # the tarball's digest
    raw = _skopeo_raw(testbed, f"{reference.rsplit(':', 1)[0]}@{image['digest']}")
    assert raw.returncode == 0, raw.stderr


@pytest.mark.engine
def test_a_publish_to_a_registry_that_never_answers_ends_within_its_bound(
    pipeline: PipelineRunner,
) -> None:
    bound = 6
    with silent_server() as port:
        start = time.monotonic()
        ran = pipeline(
            "multistage", "--no-test", "--no-run", "--no-output", "--quiet",
            "--publish", f"127.0.0.1:{port}/silent/hello:1", "--push-timeout", str(bound),
            timeout=300,
        )  # fmt: skip
        took = time.monotonic() - start
    assert ran.returncode == 1
    lines = ran.stderr.strip().splitlines()
    assert len(lines) == 1, ran.stderr
    assert lines[0].startswith("error: registry 127.0.0.1:"), lines[0]
    assert "Traceback" not in ran.stderr
    # The build itself is warm after the first test here; the whole run: bound + build + 10 s.
    assert took < bound + 60, f"{took:.1f}s"


@pytest.mark.engine
@pytest.mark.parametrize(("signum", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_an_interrupted_push_stops_and_the_run_exits(
    pipeline: PipelineRunner, tmp_path: Path, signum: int, code: int
) -> None:
    progress = tmp_path / "stderr"
    with silent_server() as port, progress.open("w") as err, started(
            [
                sys.executable, "-m", "pipeline", "multistage", "--no-test", "--no-run",
                "--no-output", "--publish", f"127.0.0.1:{port}/silent/hello:1",
                "--push-timeout", "600",
            ],
            cwd=ROOT, env=pipeline.env, stdout=subprocess.DEVNULL, stderr=err,
    ) as run:  # fmt: skip
        deadline = time.monotonic() + 240
        # Interrupt once the push has started: the silent server holds a connection then.
        while time.monotonic() < deadline and run.poll() is None:
            time.sleep(0.5)
            held = subprocess.run(
                ["ss", "-tnH", "state", "established", f"( dport = :{port} )"],
                capture_output=True, text=True, check=False,
            )  # fmt: skip
            if held.stdout.strip():
                break
        assert run.poll() is None, progress.read_text()
        run.send_signal(signum)
        stopped = time.monotonic()
        exited = run.wait(timeout=30)
        took = time.monotonic() - stopped
    assert exited == code, progress.read_text()
    assert took < 5, f"exited {took:.1f}s after the signal"
    assert "Traceback" not in progress.read_text()


@contextlib.contextmanager
def own_registry(directory: Path) -> Iterator[tuple[str, Callable[[], None], Callable[[], int]]]:
    """A registry of this test's own (Debian's docker-registry, as the test bed's): its
    address, a function that restarts it (SIGKILL, then the same storage), and one that counts
    the blob uploads it has started."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        address = f"127.0.0.1:{probe.getsockname()[1]}"
    config = directory / "registry.yml"
    config.write_text(
        "version: 0.1\nlog: {level: info, accesslog: {disabled: false}}\n"
        f"storage: {{filesystem: {{rootdirectory: {directory / 'storage'}}}}}\n"
        f"http: {{addr: {address}}}\n"
    )
    log = directory / "registry.log"
    processes: list[subprocess.Popen[bytes]] = []

    def start() -> None:
        with log.open("ab") as out:
            processes.append(
                subprocess.Popen(["docker-registry", "serve", str(config)], stdout=out, stderr=out)
            )
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            with contextlib.suppress(requests.ConnectionError):
                requests.get(f"http://{address}/v2/", timeout=1)
                return
            time.sleep(0.1)
        raise AssertionError(f"the registry at {address} did not start: {log.read_text()}")

    def restart() -> None:
        processes[-1].kill()
        processes[-1].wait()
        start()

    def uploads() -> int:
        return log.read_text(errors="replace").count('"POST /v2/')

    start()
    try:
        yield address, restart, uploads
    finally:
        for process in processes:
            process.kill()
            process.wait()


@pytest.mark.engine
def test_a_registry_restarted_mid_push_is_one_line_and_the_run_again_succeeds(
    pipeline: PipelineRunner, tmp_path: Path
) -> None:
    with own_registry(tmp_path) as (address, restart, uploads):
        reference = f"{address}/restarted/naive:1"
        command = pipeline.command(
            "naive", "--no-test", "--no-run", "--no-output", "--quiet", "--publish", reference
        )
        run = subprocess.Popen(
            command, cwd=ROOT, env=pipeline.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            text=True,
        )  # fmt: skip
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and run.poll() is None and uploads() == 0:
            time.sleep(0.05)
        assert uploads() > 0, "the push never started"
        restart()
        _, stderr = run.communicate(timeout=120)
        assert run.returncode == 1, stderr
        lines = stderr.strip().splitlines()
        assert len(lines) == 1, stderr
        assert lines[0].startswith(f"error: registry {address}"), lines[0]
        again = pipeline(
            "naive", "--no-test", "--no-run", "--no-output", "--quiet", "--publish", reference
        )
        assert again.returncode == 0, again.stderr
        assert f"{reference}@sha256:" in again.stdout
