"""pipeline.flows.sign: the SLSA provenance's statement (under GitHub Actions and off it), and
what `multistage --publish --sign-key` makes, verified offline by the real cosign, v2.6.5 and
v3.1.3, on the test bed's token registry and its TLS + htpasswd registry, with a key from
`cosign generate-key-pair` and with a plain PEM. Another key, a signature copied onto another
image and a changed payload all fail verification; signing leaves the digest as it is and
signing again changes nothing; a refused signature is one line, exit 1; the password is in no
output, file or child's environment."""

from __future__ import annotations

import base64
import json
import os
import stat
from pathlib import Path
from typing import Any

import pytest
import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from pipeline.flows import sign
from pipeline.image.oci import ImageInfo, digest_of
from pipeline.provenance import Provenance
from pipeline.refs import parse_image_ref
from pipeline.settings import Settings, Variant
from tests.conftest import PipelineRunner, Testbed, put_blob
from tests.cosign import VERSIONS, Cosign, docker_config, generate_key_pair
from tests.proxy import faulty_proxy

PASSWORD = "s3cret-sign-pass"
DIGEST = "sha256:" + "e" * 64
COMMIT = "0123456789abcdef0123456789abcdef01234567"
FACTS = sign.Facts(
    pinned={
        "golang:1.26": "docker.io/library/golang:1.26@sha256:" + "1" * 64,
        "busybox:1.35": "127.0.0.1:5000/library/busybox:1.35@sha256:" + "2" * 64,
    },
    go_version="go1.26.8",
    engine_version="v0.21.9",
    started=1796203320.4,
    finished=1796203331.9,
)


def _settings(**changes: Any) -> Settings:
    git = Provenance(
        epoch=1796203000, revision=COMMIT, source_url="https://github.com/acme/app",
        version="v1.2.0", ref="refs/heads/main",
    )  # fmt: skip
    return Settings(
        variant=Variant.MULTISTAGE, go_image="golang:1.26", runtime_image="busybox:1.35",
        provenance=git, **changes,
    )  # fmt: skip


def _predicate(env: dict[str, str], **changes: Any) -> dict[str, Any]:
    info = ImageInfo(digest=DIGEST, media_type="application/vnd.oci.image.manifest.v1+json",
                     manifests=())  # fmt: skip
    settings = _settings(**changes)
    body = sign.statement(settings, settings, info, b'{"spdxVersion":"SPDX-2.3"}', FACTS, env)
    statement = json.loads(body)
    assert statement["subject"][0]["digest"] == {"sha256": "e" * 64}
    assert statement["predicateType"] == "https://slsa.dev/provenance/v1"
    predicate: dict[str, Any] = statement["predicate"]
    return predicate


def test_the_provenance_names_the_commit_the_bases_and_the_run() -> None:
    publish = parse_image_ref("ghcr.io/acme/app:1", option="--publish")
    predicate = _predicate({}, publish=publish)
    build, run = predicate["buildDefinition"], predicate["runDetails"]
    assert build["buildType"] == sign.BUILD_TYPE
    assert build["externalParameters"]["source"] == {
        "uri": "https://github.com/acme/app", "ref": "refs/heads/main", "commit": COMMIT,
    }  # fmt: skip
    assert build["externalParameters"]["goImage"] == "golang:1.26"
    assert build["internalParameters"]["goVersion"] == "go1.26.8"
    assert build["internalParameters"]["sourceDateEpoch"] == 1796203000
    assert "github" not in build["internalParameters"]
    assert build["resolvedDependencies"] == [
        {"uri": "git+https://github.com/acme/app@refs/heads/main",
         "digest": {"gitCommit": COMMIT}},
        {"uri": "pkg:docker/library/golang@1.26", "digest": {"sha256": "1" * 64},
         "name": "go image"},
        {"uri": "pkg:docker/library/busybox@1.35?repository_url=127.0.0.1:5000",
         "digest": {"sha256": "2" * 64}, "name": "runtime image"},
    ]  # fmt: skip
    assert run["builder"] == {"id": sign.LOCAL_BUILDER}
    assert run["metadata"] == {"startedOn": "2026-12-02T09:22:00Z",
                               "finishedOn": "2026-12-02T09:22:11Z"}  # fmt: skip
    assert run["byproducts"][0]["digest"] == {
        "sha256": digest_of(b'{"spdxVersion":"SPDX-2.3"}').removeprefix("sha256:")
    }


def test_under_github_actions_the_workflow_is_the_builder() -> None:
    env = {
        "GITHUB_ACTIONS": "true", "GITHUB_SERVER_URL": "https://github.com",
        "GITHUB_WORKFLOW_REF": "acme/app/.github/workflows/images.yml@refs/heads/main",
        "GITHUB_REPOSITORY": "acme/app", "GITHUB_RUN_ID": "42", "GITHUB_RUN_ATTEMPT": "2",
        "GITHUB_EVENT_NAME": "push", "GITHUB_REPOSITORY_ID": "123",
        "RUNNER_ENVIRONMENT": "github-hosted",
    }  # fmt: skip
    predicate = _predicate(env)
    run = predicate["runDetails"]
    assert run["builder"]["id"] == (
        "https://github.com/acme/app/.github/workflows/images.yml@refs/heads/main"
    )
    assert run["metadata"]["invocationId"] == (
        "https://github.com/acme/app/actions/runs/42/attempts/2"
    )
    assert predicate["buildDefinition"]["internalParameters"]["github"] == {
        "event_name": "push", "repository_id": "123", "runner_environment": "github-hosted",
    }  # fmt: skip


# --- against the engine, the registries and cosign ------------------------------------------


def _plain_pem(path: Path) -> Path:
    key = ec.generate_private_key(ec.SECP256R1())
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return path


def _public(key: Path, password: str | None) -> Path:
    from pipeline.image.keys import load_key

    public = key.with_suffix(".pub")
    public.write_bytes(load_key(key, password).public_pem)
    return public


def _logins(testbed: Testbed, tmp_path: Path) -> Path:
    login = (testbed["TESTBED_AUTH_USER"], testbed["TESTBED_AUTH_PASSWORD"])
    return docker_config(
        tmp_path / "docker",
        {testbed.auth_registry: login, testbed["TESTBED_TOKEN_REGISTRY"]: login},
    )


def _publish(
    pipeline: PipelineRunner,
    testbed: Testbed,
    reference: str,
    tmp_path: Path,
    *args: str,
    env: dict[str, str] | None = None,
) -> tuple[dict[str, Any], Any]:
    report = tmp_path / f"run-{len(list(tmp_path.glob('run-*.json')))}.json"
    login = []
    extra = dict(env or {})
    if reference.startswith((testbed.auth_registry, testbed["TESTBED_TOKEN_REGISTRY"])):
        login = ["--registry-username", testbed["TESTBED_AUTH_USER"], "--registry-ca",
                 testbed["TESTBED_CA"]]  # fmt: skip
        extra["PIPELINE_REGISTRY_PASSWORD"] = testbed["TESTBED_AUTH_PASSWORD"]
    ran = pipeline(
        "multistage", "--no-test", "--no-run", "--no-output", "--publish", reference,
        *login, "--json", str(report), *args, extra_env=extra,
    )  # fmt: skip
    assert ran.returncode == 0, ran.stderr
    image: dict[str, Any] = json.loads(report.read_text())["images"][0]
    return image, ran


TRUSTED_ROOT = '{"mediaType":"application/vnd.dev.sigstore.trustedroot+json;version=0.1"}'


@pytest.mark.engine
@pytest.mark.parametrize(
    ("where", "form"),
    [
        ("token", "legacy"),  # a key from cosign generate-key-pair
        ("htpasswd", "both"),  # a plain PEM
        ("referrers", "bundle"),  # a key from cosign generate-key-pair; two platforms
    ],
)
def test_cosign_verifies_the_signature_the_provenance_and_the_sbom(
    pipeline: PipelineRunner, inside: Testbed, tmp_path: Path, where: str, form: str
) -> None:
    registry = {
        "token": inside["TESTBED_TOKEN_REGISTRY"],
        "htpasswd": inside.auth_registry,
        "referrers": inside["TESTBED_REFERRERS_REGISTRY"],
    }[where]
    if where == "htpasswd":
        key = _plain_pem(tmp_path / "release.pem")
        public, env = _public(key, None), {}
    else:
        key, public = generate_key_pair(tmp_path / "keys", PASSWORD)
        env = {"PIPELINE_SIGN_PASSWORD": PASSWORD}
    platforms = ("linux/amd64", "linux/arm64") if where == "referrers" else ()
    args = [a for p in platforms for a in ("--platform", p)]
    if platforms:
        args += ["--runtime-image", "scratch"]
    repository = f"{registry}/signed/{where}"
    provenance = tmp_path / "provenance.json"
    image, ran = _publish(
        pipeline, inside, f"{repository}:1", tmp_path, "--sign-key", str(key),
        "--signature-format", form, "--provenance", str(provenance), *args, env=env,
    )  # fmt: skip
    digest = image["digest"]
    statement = json.loads(provenance.read_text())
    assert statement["subject"] == [
        {"name": repository, "digest": {"sha256": digest.removeprefix("sha256:")}}
    ]
    signed = [s["digest"] for s in image["signatures"]]
    assert signed == ([] if form == "bundle" else [digest, *signed[1:]])
    assert len(signed) == (0 if form == "bundle" else 1 + len(platforms))
    assert (image["attestations"] is None) == (form == "bundle")
    # a signature per image and platform, and the provenance's and the SBOM's
    assert len(image["bundles"]) == (0 if form == "legacy" else 1 + len(platforms) + 2)
    root = tmp_path / "trusted_root.json"
    root.write_text(TRUSTED_ROOT)
    config = _logins(inside, tmp_path)
    for version in VERSIONS:
        cosign = Cosign(version, config, inside["TESTBED_CA"])
        # cosign v2.6 reads bundles (as soon as an image has one) only with a trusted root,
        # even offline with a key: one that names no authority will do.
        extra = (f"--trusted-root={root}",) if form != "legacy" and version.startswith("v2") else ()
        pinned = f"{repository}@{digest}"
        verified = cosign.verify(pinned, public, *extra)
        assert verified.returncode == 0, f"{version}: {verified.stderr}"
        for kind in ("slsaprovenance1", "spdxjson"):
            attested = cosign.verify_attestation(pinned, public, kind, *extra)
            assert attested.returncode == 0, f"{version} {kind}: {attested.stderr}"
        if form == "legacy":
            assert json.loads(verified.stdout)[0]["critical"]["image"] == {
                "docker-manifest-digest": digest
            }
            attested = cosign.verify_attestation(pinned, public, "slsaprovenance1")
            envelope = json.loads(attested.stdout)
            assert json.loads(base64.b64decode(envelope["payload"])) == statement
        for platform_digest in signed[1:] or _platforms(
            inside, registry, "signed/referrers", digest, platforms
        ):
            found = cosign.verify(f"{repository}@{platform_digest}", public, *extra)
            assert found.returncode == 0, f"{version} {platform_digest}: {found.stderr}"
    outputs = ran.stdout + ran.stderr + provenance.read_text() + json.dumps(image)
    assert PASSWORD not in outputs
    assert inside["TESTBED_AUTH_PASSWORD"] not in outputs


def _platforms(
    testbed: Testbed, registry: str, repository: str, digest: str, platforms: tuple[str, ...]
) -> list[str]:
    """The platform manifests' digests of the index `digest` (none for one platform)."""
    if not platforms:
        return []
    answer = requests.get(
        f"http://{registry}/v2/{repository}/manifests/{digest}",
        headers={"Accept": "application/vnd.oci.image.index.v1+json"},
        timeout=30,
    )
    answer.raise_for_status()
    found = [str(m["digest"]) for m in answer.json()["manifests"]]
    assert len(found) == len(platforms)
    return found


def _manifest_at(testbed: Testbed, repository: str, tag: str) -> bytes:
    answer = requests.get(
        f"http://{testbed.registry}/v2/{repository}/manifests/{tag}",
        headers={"Accept": "application/vnd.oci.image.manifest.v1+json"},
        timeout=30,
    )
    answer.raise_for_status()
    return answer.content


def _put_manifest(testbed: Testbed, repository: str, tag: str, manifest: bytes) -> None:
    answer = requests.put(
        f"http://{testbed.registry}/v2/{repository}/manifests/{tag}",
        data=manifest,
        headers={"Content-Type": "application/vnd.oci.image.manifest.v1+json"},
        timeout=30,
    )
    answer.raise_for_status()


@pytest.mark.engine
def test_another_key_a_copied_signature_and_a_changed_payload_fail(
    pipeline: PipelineRunner, inside: Testbed, tmp_path: Path
) -> None:
    key = _plain_pem(tmp_path / "release.pem")
    public, other = _public(key, None), _public(_plain_pem(tmp_path / "other.pem"), None)
    path = "signed/tampered"
    repository = f"{inside.registry}/{path}"
    signed, _ = _publish(pipeline, inside, f"{repository}:1", tmp_path, "--sign-key", str(key))
    unsigned, _ = _publish(
        pipeline, inside, f"{repository}:2", tmp_path, "--build-env", "GOAMD64=v2"
    )
    assert signed["digest"] != unsigned["digest"]
    cosign = Cosign(VERSIONS[-1], _logins(inside, tmp_path))
    assert cosign.verify(f"{repository}@{signed['digest']}", public).returncode == 0
    assert cosign.verify(f"{repository}@{signed['digest']}", other).returncode != 0
    assert cosign.verify(f"{repository}@{unsigned['digest']}", public).returncode != 0

    # The signature manifest copied onto the other image's tag: its payload names another digest.
    sig = _manifest_at(inside, path, f"{signed['digest'].replace(':', '-')}.sig")
    _put_manifest(inside, path, f"{unsigned['digest'].replace(':', '-')}.sig", sig)
    assert cosign.verify(f"{repository}@{unsigned['digest']}", public).returncode != 0

    # A payload that names the other image, with the signature of the first one's.
    manifest = json.loads(sig)
    payload = json.loads(
        requests.get(
            f"http://{inside.registry}/v2/{path}/blobs/{manifest['layers'][0]['digest']}",
            timeout=30,
        ).content
    )
    payload["critical"]["image"]["docker-manifest-digest"] = unsigned["digest"]
    changed = json.dumps(payload, separators=(",", ":")).encode()
    manifest["layers"][0].update(put_blob(f"http://{inside.registry}", path, changed))
    _put_manifest(
        inside, path, f"{unsigned['digest'].replace(':', '-')}.sig", json.dumps(manifest).encode()
    )
    failed = cosign.verify(f"{repository}@{unsigned['digest']}", public)
    assert failed.returncode != 0
    assert "invalid signature" in failed.stderr.lower() or "no matching" in failed.stderr.lower()


@pytest.mark.engine
def test_signing_keeps_the_digest_and_signing_again_changes_nothing(
    pipeline: PipelineRunner, inside: Testbed, tmp_path: Path
) -> None:
    key = _plain_pem(tmp_path / "release.pem")
    path = "signed/again"
    repository = f"{inside.registry}/{path}"
    plain, _ = _publish(pipeline, inside, f"{repository}:plain", tmp_path)
    first, _ = _publish(pipeline, inside, f"{repository}:1", tmp_path, "--sign-key", str(key))
    tag = f"{first['digest'].replace(':', '-')}.sig"
    before = _manifest_at(inside, path, tag)
    second, _ = _publish(pipeline, inside, f"{repository}:1", tmp_path, "--sign-key", str(key))
    assert plain["digest"] == first["digest"] == second["digest"]
    assert first["signatures"] == second["signatures"]
    assert _manifest_at(inside, path, tag) == before
    assert digest_of(before) == first["signatures"][0]["manifest"]


@pytest.mark.engine
def test_a_refused_signature_fails_the_run_in_one_line(
    pipeline: PipelineRunner, inside: Testbed, tmp_path: Path
) -> None:
    key = _plain_pem(tmp_path / "release.pem")

    def refuse_signatures(method: str, path: str) -> tuple[int, dict[str, str]] | None:
        if method == "PUT" and "/manifests/sha256-" in path and path.endswith(".sig"):
            return 403, {}
        return None

    with faulty_proxy(inside.registry, refuse_signatures) as (proxy, answered):
        ran = pipeline(
            "multistage", "--no-test", "--no-run", "--no-output",
            "--publish", f"{proxy}/signed/refused:1", "--sign-key", str(key),
        )  # fmt: skip
    assert ran.returncode == 1, ran.stderr
    assert answered
    (line,) = [line for line in ran.stderr.splitlines() if line.startswith("error:")]
    assert f"{proxy}/signed/refused@sha256:" in line
    assert "was pushed but not signed" in line
    assert "Traceback" not in ran.stderr


@pytest.mark.engine
def test_no_child_sees_the_signing_password(
    pipeline: PipelineRunner, inside: Testbed, tmp_path: Path
) -> None:
    key, _ = generate_key_pair(tmp_path / "keys", PASSWORD)
    seen = tmp_path / "seen"
    cli = tmp_path / "dagger"
    real = pipeline.env.get("_EXPERIMENTAL_DAGGER_CLI_BIN", "dagger")
    cli.write_text(f'#!/bin/sh\nenv >> "{seen}"\nexec "{real}" "$@"\n')
    cli.chmod(cli.stat().st_mode | stat.S_IEXEC)
    image, ran = _publish(
        pipeline, inside, f"{inside.registry}/signed/env:1", tmp_path, "--sign-key", str(key),
        env={"PIPELINE_SIGN_PASSWORD": PASSWORD, "_EXPERIMENTAL_DAGGER_CLI_BIN": str(cli)},
    )  # fmt: skip
    assert image["signatures"]
    assert "_EXPERIMENTAL_DAGGER_RUNNER_HOST" in seen.read_text()  # the child ran
    assert PASSWORD not in seen.read_text()
    assert "PIPELINE_SIGN_PASSWORD" not in seen.read_text()
    assert PASSWORD not in ran.stdout + ran.stderr
    assert os.environ.get("PIPELINE_SIGN_PASSWORD") is None
