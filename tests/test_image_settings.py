"""pipeline.recipe.image_settings and the build settings, against the real engine: the example
service's two images built in one run from its pipeline.toml (ldflags stamped from git, a
build tag, CMD, env, a port, --files), published under three tags each, then the api built
again from flags alone giving the same values."""

from __future__ import annotations

import json
import platform
import stat
import subprocess
from pathlib import Path
from typing import Any

import pytest

from pipeline.image import buildinfo
from tests.conftest import ROOT, PipelineRunner, Testbed
from tests.images import file_bytes, layer_files, manifests

Builds = tuple[dict[str, Any], dict[str, Any], Path, str, dict[str, Any]]
EXAMPLE = ROOT / "examples" / "service"
VERSION = "example.com/service/internal/version"
LDFLAGS = f"-X {VERSION}.Version={{{{.Version}}}} -X {VERSION}.Commit={{{{.ShortCommit}}}}"


def _git(*args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(EXAMPLE), *args], capture_output=True, text=True, check=True
    ).stdout.strip()


@pytest.fixture(scope="module")
def builds(
    pipeline: PipelineRunner, testbed: Testbed, tmp_path_factory: pytest.TempPathFactory
) -> Builds:
    """The example's images built from its pipeline.toml (plus a version, a label, an
    annotation and tags on the command line), then the api from flags alone: the api's two
    reports, its first tarball and the repository it was published to, and the worker's
    report."""
    out = tmp_path_factory.mktemp("image-settings")
    repository = f"{testbed.registry}/image-settings/api"
    shared = (
        "--app-version", "v1.2.3", "--label", "team=payments",
        "--annotation", "org.example.owner=payments", "--no-test",
    )  # fmt: skip
    from_file = pipeline(
        "multistage", "--source", str(EXAMPLE), *shared,
        "--publish", f"{testbed.registry}/image-settings/{{{{.Name}}}}:one",
        "--tag", "two", "--tag", "three",
        "--output", str(out / "{{.Name}}.tar"), "--json", str(out / "file.json"),
    )  # fmt: skip
    assert from_file.returncode == 0, from_file.stderr
    empty = out / "empty.toml"
    empty.write_text("")
    from_flags = pipeline(
        "multistage", "--source", str(EXAMPLE), "--config", str(empty), *shared,
        "--package", "./cmd/api", "--name", "api", "--no-run", "--ldflags", LDFLAGS,
        "--build-tag", "netgo", "--cmd", "serve", "--port", "8080",
        "--files", str(EXAMPLE / "files"), "--env", "PORT=8080",
        "--output", str(out / "flags.tar"), "--json", str(out / "flags.json"),
    )  # fmt: skip
    assert from_flags.returncode == 0, from_flags.stderr
    runs = json.loads((out / "file.json").read_text())
    assert runs["failed"] == []
    first, worker = runs["runs"]
    second = json.loads((out / "flags.json").read_text())
    return first, second, out / "api.tar", repository, worker


@pytest.mark.engine
def test_the_config_file_and_the_flags_give_one_digest(
    builds: Builds,
) -> None:
    first, second, *_ = builds
    assert first["images"][0]["digest"] == second["images"][0]["digest"]


@pytest.mark.engine
def test_every_tag_names_the_one_digest(builds: Builds, testbed: Testbed) -> None:
    first, _, _, repository, _ = builds
    image = first["images"][0]
    assert image["tags"] == ["one", "two", "three"]
    for tag in image["tags"]:
        seen = testbed.skopeo(
            "inspect",
            "--tls-verify=false",
            "--format",
            "{{.Digest}}",
            f"docker://{repository}:{tag}",
        )
        assert seen.returncode == 0, seen.stderr
        assert seen.stdout.strip() == image["digest"], tag


@pytest.mark.engine
def test_the_binary_says_the_stamped_version_and_commit(
    builds: Builds,
) -> None:
    _, _, tarball, *_ = builds
    (manifest,) = manifests(tarball)
    binary = file_bytes(tarball, manifest, "myapp/api")
    settings = {s["Key"]: s["Value"] for s in buildinfo.read(binary)["Settings"]}
    assert settings["-tags"] == "netgo"  # as `go version -m` shows it
    _says(binary, manifest, tarball.parent / "api", "api")


def _says(binary: bytes, manifest: dict[str, Any], program: Path, name: str) -> None:
    """The binary, run on this machine (it is static) where the image is for its platform,
    prints its stamped version and commit."""
    if manifest["_config"]["architecture"] != {"x86_64": "amd64", "aarch64": "arm64"}.get(
        platform.machine()
    ):
        return
    program.write_bytes(binary)
    program.chmod(stat.S_IRWXU)
    said = subprocess.run([str(program)], capture_output=True, text=True, check=True)
    assert said.stdout == f"{name} v1.2.3 ({_git('rev-parse', 'HEAD')[:12]})\n"


@pytest.mark.engine
def test_the_image_says_what_the_settings_say(
    builds: Builds,
) -> None:
    first, _, tarball, *_ = builds
    (manifest,) = manifests(tarball)
    config = manifest["_config"]["config"]
    assert config["Cmd"] == ["serve"]
    assert config["Entrypoint"] == ["/myapp/api"]
    assert {"PORT=8080", "DATA_PATH=/myapp/data"} <= set(config["Env"])
    assert set(config["ExposedPorts"]) == {"8080/tcp"}
    assert config["Labels"]["team"] == "payments"
    assert config["Labels"]["org.opencontainers.image.version"] == "v1.2.3"
    assert manifest["annotations"]["org.example.owner"] == "payments"
    sbom = json.loads(Path(first["images"][0]["sbom"]).read_text())
    (main,) = [p for p in sbom["packages"] if p["SPDXID"] == "SPDXRef-main-module"]
    assert main["versionInfo"] == "v1.2.3"


@pytest.mark.engine
def test_the_files_ship_beside_the_binary_with_fixed_modes_and_times(
    builds: Builds,
) -> None:
    _, _, tarball, *_ = builds
    (manifest,) = manifests(tarball)
    epoch = int(_git("log", "-1", "--format=%ct"))
    files = {str(f["path"]): f for f in layer_files(tarball, manifest)}
    page = files["myapp/data/templates/index.html"]
    assert (page["mode"], page["mtime"]) == (0o644, epoch)
    assert files["myapp/api"]["layer"] == len(manifest["layers"]) - 1  # the top layer, alone
    assert page["layer"] == len(manifest["layers"]) - 2
    shipped = file_bytes(tarball, manifest, "myapp/data/templates/index.html")
    assert shipped == (EXAMPLE / "files" / "templates" / "index.html").read_bytes()


@pytest.mark.engine
def test_the_worker_built_beside_the_api_with_its_own_settings(builds: Builds) -> None:
    first, _, _, _, worker = builds
    (image,) = worker["images"]
    assert image["ref"] == "worker:multistage"
    assert image["digest"] != first["images"][0]["digest"]
    (manifest,) = manifests(Path(image["output"]))
    config = manifest["_config"]["config"]
    assert (config["Entrypoint"], config["Cmd"]) == (["/myapp/worker"], ["run"])
    assert "WORKER_INTERVAL=30s" in config["Env"]
    binary = file_bytes(Path(image["output"]), manifest, "myapp/worker")
    settings = {s["Key"]: s["Value"] for s in buildinfo.read(binary)["Settings"]}
    assert settings["-tags"] == "netgo"
    _says(binary, manifest, Path(image["output"]).parent / "worker", "worker")
