"""The test bed itself (tests/testbed/): what `up` wrote, what its registries serve, and a
smoke test of the engine it runs: golang builds hello world, the binary's File goes into
busybox, the image runs, exports, and is published to both registries and pulled back."""

from __future__ import annotations

import json
from pathlib import Path

import anyio
import dagger
import pytest
from dagger import dag

from tests.conftest import ROOT, Testbed

ENV_KEYS = (
    "DOCKER_HOST",
    "DO_NOT_TRACK",
    "DAGGER_NO_UPDATE_CHECK",
    "DAGGER_NO_NAG",
    "PIPELINE_GO_IMAGE",
    "PIPELINE_RUNTIME_IMAGE",
    "TESTBED_REGISTRY",
    "TESTBED_AUTH_REGISTRY",
    "TESTBED_CA",
    "TESTBED_AUTH_USER",
    "TESTBED_AUTH_PASSWORD",
    "TESTBED_GOLANG_DIGEST",
    "TESTBED_BUSYBOX_DIGEST",
    "TESTBED_STATIC_DIGEST",
    "TESTBED_STATIC_IMAGE",
)


def test_env_file_has_everything(testbed: Testbed) -> None:
    missing = [key for key in ENV_KEYS if not testbed.env.get(key)]
    assert missing == []
    assert testbed["PIPELINE_RUNTIME_IMAGE"] == "busybox:1.35"
    assert (ROOT / "tests" / "testbed" / "env").stat().st_mode & 0o077 == 0, (
        "env is readable by others"
    )


@pytest.mark.parametrize(
    ("repo", "digest_key", "labels"),
    [
        ("library/golang:1.26", "TESTBED_GOLANG_DIGEST", ("debootstrap", "Go 1.26.8")),
        ("library/busybox:1.35", "TESTBED_BUSYBOX_DIGEST", ("busybox-static",)),
        ("testbed/static:bookworm", "TESTBED_STATIC_DIGEST", ("no shell", "65532")),
    ],
)
def test_base_images_are_served_with_their_recipe(
    testbed: Testbed, repo: str, digest_key: str, labels: tuple[str, ...]
) -> None:
    inspected = testbed.skopeo(
        "inspect", "--tls-verify=false", f"docker://{testbed.registry}/{repo}"
    )
    assert inspected.returncode == 0, inspected.stderr
    data = json.loads(inspected.stdout)
    assert data["Digest"] == testbed[digest_key]
    description = data["Labels"]["org.opencontainers.image.description"]
    for word in labels:
        assert word in description


def test_golang_image_is_like_the_official_one(testbed: Testbed) -> None:
    config = testbed.skopeo(
        "inspect",
        "--config",
        "--tls-verify=false",
        f"docker://{testbed.registry}/library/golang:1.26",
    )
    env = dict(e.split("=", 1) for e in json.loads(config.stdout)["config"]["Env"])
    assert env["GOLANG_VERSION"] == "1.26.8"
    assert env["GOPATH"] == "/go"
    assert env["GOTOOLCHAIN"] == "local"
    assert env["PATH"].startswith("/go/bin:/usr/local/go/bin:")
    assert json.loads(config.stdout)["config"]["WorkingDir"] == "/go"


@pytest.mark.engine
def test_smoke(
    engine_env: dict[str, str], testbed: Testbed, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for key, value in engine_env.items():
        if key.startswith(("_EXPERIMENTAL_DAGGER", "DAGGER_", "DO_NOT_TRACK")):
            monkeypatch.setenv(key, value)
    tarball = tmp_path / "smoke.tar"

    async def smoke() -> tuple[str, str, str]:
        async with dagger.connection(dagger.Config(log_output=None)):
            source = dag.host().directory(str(ROOT / "go-src"))
            binary = (
                dag.container()
                .from_("golang:1.26")
                .with_directory("/src", source)
                .with_workdir("/src")
                .with_env_variable("CGO_ENABLED", "0")
                .with_exec(["go", "build", "-o", "/out/hello", "."])
                .file("/out/hello")
            )
            image = (
                dag.container()
                .from_("busybox:1.35")
                .with_file("/hello", binary)
                .with_entrypoint(["/hello"])
            )
            printed = await image.with_exec([], use_entrypoint=True).stdout()
            await image.export(str(tarball))
            plain = await image.publish(f"{testbed.registry}/smoke/hello:plain")
            password = dag.set_secret("testbed-password", testbed["TESTBED_AUTH_PASSWORD"])
            secured = await image.with_registry_auth(
                testbed.auth_registry, testbed["TESTBED_AUTH_USER"], password
            ).publish(f"{testbed.auth_registry}/smoke/hello:auth")
            return printed, plain, secured

    printed, plain, secured = anyio.run(smoke)
    assert printed == "Hello World\n"
    assert testbed.skopeo("inspect", f"oci-archive:{tarball}").returncode == 0
    assert plain.startswith(f"{testbed.registry}/smoke/hello:plain@sha256:")
    pulled = testbed.skopeo(
        "copy",
        "--src-tls-verify=false",
        "docker://" + plain.replace(":plain@", "@"),
        f"oci:{tmp_path / 'plain'}",
    )
    assert pulled.returncode == 0, pulled.stderr
    pulled = testbed.pull_with_login(
        "docker://" + secured.replace(":auth@", "@"), tmp_path / "auth"
    )
    assert pulled.returncode == 0, pulled.stderr
    denied = testbed.skopeo(
        "inspect",
        "--cert-dir",
        testbed["TESTBED_CERTS_DIR"],
        f"docker://{testbed.auth_registry}/smoke/hello:auth",
    )
    assert denied.returncode != 0, "the auth registry served without credentials"
