"""pipeline.recipe.modules, against the real engine and the test bed's module host (apache:
a GOPROXY-protocol directory and git http-backend, basic auth over TLS): a program that
imports a private module from each downloads them with credentials given as a token or a
.netrc, which no output, tarball, cache artifact or report holds; without them, or with a
wrong one, the build fails in one line naming the host. Each build starts on Go caches of
its own (a --cache-from/--cache-to reference no other build uses), so `go mod download` runs."""

from __future__ import annotations

import gzip
import json
import shutil
import subprocess
import uuid
from pathlib import Path

import pytest

from tests.conftest import ROOT, PipelineRunner, Testbed

FIXTURE = ROOT / "tests" / "fixtures" / "private"


def _where(testbed: Testbed) -> list[str]:
    host = testbed["TESTBED_MODULE_HOST"]
    return [
        "--no-test",
        "--goprivate", host,
        "--goproxy", testbed["TESTBED_MODULE_PROXY"],
        "--gonosumdb", f"example.com/private,{host}",
        "--module-ca", testbed["TESTBED_CA"],
    ]  # fmt: skip


def _fresh_caches(testbed: Testbed) -> list[str]:
    return ["--cache-from", f"{testbed.registry}/modules/cache:{uuid.uuid4().hex[:12]}"]


def _source(tmp_path: Path) -> Path:
    copy = tmp_path / "src"
    shutil.copytree(FIXTURE, copy)
    return copy


def _access_log(testbed: Testbed) -> Path:
    return Path(testbed["TESTBED_CA"]).parent.parent / "logs" / "module-host-access.log"


def _holds(path: Path, secret: bytes) -> bool:
    """Whether `path` (a file, or every file under a directory, gzip members opened) holds
    `secret`."""
    files = [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file()]
    for file in files:
        data = file.read_bytes()
        if data[:2] == b"\x1f\x8b":
            data = gzip.decompress(data)
        if secret in data:
            return True
    return False


@pytest.mark.engine
def test_both_private_modules_download_with_a_token_and_leave_it_nowhere(
    pipeline: PipelineRunner, testbed: Testbed, tmp_path: Path
) -> None:
    password = testbed["TESTBED_AUTH_PASSWORD"]
    log = _access_log(testbed)
    seen = log.stat().st_size
    cache = f"{testbed.registry}/modules/cache:{uuid.uuid4().hex[:12]}"
    report = tmp_path / "run.json"
    host = testbed["TESTBED_MODULE_HOST"]
    ran = pipeline(
        "multistage", "--source", str(_source(tmp_path)), *_where(testbed),
        "--module-token", f"{testbed['TESTBED_AUTH_USER']}@{host}=MODULE_TOKEN",
        "--cache-from", cache, "--cache-to", cache,
        "--output", str(tmp_path / "out" / "image.tar"), "--json", str(report),
        extra_env={"MODULE_TOKEN": password},
    )  # fmt: skip
    assert ran.returncode == 0, ran.stderr
    assert "run printed: 'Hello, private modules'" in ran.stdout
    served = log.read_text()[seen:].splitlines()
    user = testbed["TESTBED_AUTH_USER"]
    assert any(f" {user} " in line and "greet/@v/v1.0.0.zip" in line for line in served), served
    assert any(
        f" {user} " in line and "/git/words" in line and "git-upload-pack" in line
        for line in served
    ), served
    # Nowhere: the run's output, the image, the SBOM, the report, the saved Go caches.
    secret = password.encode()
    assert password not in ran.stdout + ran.stderr
    assert not _holds(tmp_path / "out", secret)
    assert not _holds(report, secret)
    saved = json.loads(report.read_text())["go_cache"]["saved_to"].split("@")[0]  # by its tag
    artifact = tmp_path / "artifact"
    copied = testbed.skopeo(
        "copy", "--src-tls-verify=false", f"docker://{saved}", f"oci:{artifact}"
    )
    assert copied.returncode == 0, copied.stderr
    assert _holds(artifact, b"example.com/private/greet@v1.0.0")  # the modules are there
    assert not _holds(artifact, secret)


@pytest.mark.engine
def test_without_credentials_the_proxy_refuses_in_one_line(
    pipeline: PipelineRunner, testbed: Testbed, tmp_path: Path
) -> None:
    source = _source(tmp_path)
    # Only the module the proxy serves: its refusal is the one go reports.
    (source / "go.mod").write_text(
        "module example.com/privateuser\n\ngo 1.22\n\nrequire example.com/private/greet v1.0.0\n"
    )
    sums = (FIXTURE / "go.sum").read_text().splitlines()
    (source / "go.sum").write_text("\n".join(s for s in sums if "greet" in s) + "\n")
    (source / "main.go").write_text(
        'package main\n\nimport (\n\t"fmt"\n\n\t"example.com/private/greet"\n)\n\n'
        'func main() { fmt.Println(greet.Hello("proxy")) }\n'
    )
    ran = pipeline("multistage", "--source", str(source), *_where(testbed), *_fresh_caches(testbed))
    assert ran.returncode == 1, ran.stderr
    (line,) = [x for x in ran.stderr.splitlines() if x.startswith("error:")]
    host = testbed["TESTBED_MODULE_HOST"]
    assert (
        f"the module host {host} refused example.com/private/greet@v1.0.0 (401 Unauthorized)"
        in line
    ), ran.stderr
    assert "--netrc or --module-token" in line
    assert "go: downloading" not in ran.stderr  # not the go command's page


@pytest.mark.engine
def test_a_wrong_netrc_is_refused_by_the_git_host_in_one_line(
    pipeline: PipelineRunner, testbed: Testbed, tmp_path: Path
) -> None:
    host = testbed["TESTBED_MODULE_HOST"]
    wrong = f"machine {host} login {testbed['TESTBED_AUTH_USER']} password not-the-password\n"
    ran = pipeline(
        "multistage", "--source", str(_source(tmp_path)), *_where(testbed),
        *_fresh_caches(testbed), extra_env={"PIPELINE_NETRC": wrong},
    )  # fmt: skip
    assert ran.returncode == 1, ran.stderr
    (line,) = [x for x in ran.stderr.splitlines() if x.startswith("error:")]
    assert line.startswith("error: `go mod download`: "), line
    assert f"the module host {host} refused {host}/git/words.git@v1.0.0 over git" in line
    assert "not-the-password" not in ran.stderr + ran.stdout


def test_the_fixture_is_the_go_sum_the_host_serves() -> None:
    """go.sum holds what tests/testbed/modulehost.py lays out (same bytes on every machine)."""
    sums = (FIXTURE / "go.sum").read_text()
    for module in ("192.0.2.1/git/words.git v1.0.0", "example.com/private/greet v1.0.0"):
        assert f"{module} h1:" in sums
        assert f"{module}/go.mod h1:" in sums
    assert subprocess.run(["git", "--version"], capture_output=True, check=False).returncode == 0
