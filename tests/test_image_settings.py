"""pipeline.recipe.image_settings and the build settings, against the real engine: the example
service's api built from its pipeline.toml (ldflags stamped from git, a build tag, CMD, env,
a port, --files) and published under three tags, then built again from flags alone giving
the same values. In this process: the lazy descriptions need no engine to be made."""

from __future__ import annotations

import json
import stat
import subprocess
from pathlib import Path
from typing import Any

import pytest

from pipeline.image import buildinfo
from tests.conftest import ROOT, PipelineRunner, Testbed
from tests.images import file_bytes, layer_files, manifests

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
) -> tuple[dict[str, Any], dict[str, Any], Path, str]:
    """The api built from the example's pipeline.toml (plus a version, a label, an annotation
    and tags on the command line), then from flags alone: both reports, the first tarball and
    the repository it was published to."""
    out = tmp_path_factory.mktemp("image-settings")
    repository = f"{testbed.registry}/image-settings/api"
    shared = (
        "--app-version", "v1.2.3", "--label", "team=payments",
        "--annotation", "org.example.owner=payments", "--no-test",
    )  # fmt: skip
    from_file = pipeline(
        "multistage", "--source", str(EXAMPLE), *shared,
        "--publish", f"{repository}:one", "--tag", "two", "--tag", "three",
        "--output", str(out / "file.tar"), "--json", str(out / "file.json"),
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
    first = json.loads((out / "file.json").read_text())
    second = json.loads((out / "flags.json").read_text())
    return first, second, out / "file.tar", repository


@pytest.mark.engine
def test_the_config_file_and_the_flags_give_one_digest(
    builds: tuple[dict[str, Any], dict[str, Any], Path, str],
) -> None:
    first, second, _, _ = builds
    assert first["images"][0]["digest"] == second["images"][0]["digest"]


@pytest.mark.engine
def test_every_tag_names_the_one_digest(
    builds: tuple[dict[str, Any], dict[str, Any], Path, str], testbed: Testbed
) -> None:
    first, _, _, repository = builds
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
    builds: tuple[dict[str, Any], dict[str, Any], Path, str],
) -> None:
    _, _, tarball, _ = builds
    (manifest,) = manifests(tarball)
    binary = file_bytes(tarball, manifest, "myapp/api")
    settings = {s["Key"]: s["Value"] for s in buildinfo.read(binary)["Settings"]}
    assert settings["-tags"] == "netgo"  # as `go version -m` shows it
    if manifest["_config"]["architecture"] == "amd64" and Path("/lib64").exists():
        program = tarball.parent / "api"
        program.write_bytes(binary)
        program.chmod(stat.S_IRWXU)
        said = subprocess.run([str(program)], capture_output=True, text=True, check=True)
        assert said.stdout == f"api v1.2.3 ({_git('rev-parse', 'HEAD')[:12]})\n"


@pytest.mark.engine
def test_the_image_says_what_the_settings_say(
    builds: tuple[dict[str, Any], dict[str, Any], Path, str],
) -> None:
    first, _, tarball, _ = builds
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
    builds: tuple[dict[str, Any], dict[str, Any], Path, str],
) -> None:
    _, _, tarball, _ = builds
    (manifest,) = manifests(tarball)
    epoch = int(_git("log", "-1", "--format=%ct"))
    files = {str(f["path"]): f for f in layer_files(tarball, manifest)}
    page = files["myapp/data/templates/index.html"]
    assert (page["mode"], page["mtime"]) == (0o644, epoch)
    assert files["myapp/api"]["layer"] == len(manifest["layers"]) - 1  # the top layer, alone
    assert page["layer"] == len(manifest["layers"]) - 2
    shipped = file_bytes(tarball, manifest, "myapp/data/templates/index.html")
    assert shipped == (EXAMPLE / "files" / "templates" / "index.html").read_bytes()
