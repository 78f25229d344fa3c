"""The test bed itself (tests/testbed/): what `up` wrote, what its registries serve, its token
registry and token service (bearer tokens as Docker Hub, Harbor and GitLab hand them out), and a
smoke test of the engine it runs: golang builds hello world, the binary's File goes into
busybox, the image runs, exports, and is published to both registries and pulled back."""

from __future__ import annotations

import base64
import json
import os
import ssl
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

import anyio
import dagger
import httpx
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
    "TESTBED_TOKEN_REGISTRY",
    "TESTBED_TOKEN_REALM",
    "TESTBED_TOKEN_SERVICE",
    "TESTBED_TOKEN_LOG",
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


# --- the token registry and its token service -------------------------------------------


@dataclass(frozen=True)
class TokenBed:
    """The token registry (`auth: token`), its realm, and an HTTPS client that trusts the test
    bed's CA; only inside the test bed's network namespace, where they listen."""

    __test__ = False

    registry: str
    realm: str
    service: str
    user: str
    password: str
    log: Path
    http: httpx.Client

    def token(
        self, *scopes: str, auth: tuple[str, str] | None = None, **params: str
    ) -> httpx.Response:
        """The GET form: realm?service=…&scope=…&scope=…, with basic auth or none."""
        query = httpx.QueryParams({"service": self.service, **params}).merge({"scope": scopes})
        return self.http.get(self.realm, params=query, auth=auth)

    def user_token(self, *scopes: str) -> str:
        answer = self.token(*scopes, auth=(self.user, self.password))
        assert answer.status_code == 200, answer.text
        return str(answer.json()["token"])

    def oauth(self, **form: str) -> httpx.Response:
        """The OAuth2 form: POST realm, form-encoded."""
        return self.http.post(self.realm, data={"service": self.service, **form})

    def start_upload(self, repo: str, token: str) -> httpx.Response:
        """POST /v2/<repo>/blobs/uploads/ with the token. A started upload stays (cancelling
        it takes `delete`, never granted); the registry purges stale ones itself."""
        return self.http.post(
            f"https://{self.registry}/v2/{repo}/blobs/uploads/",
            headers={"Authorization": f"Bearer {token}"},
        )


def jwt_part(token: str, index: int) -> dict[str, Any]:
    """A JWT's header (0) or claims (1), decoded."""
    part = token.split(".")[index]
    decoded: dict[str, Any] = json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))
    return decoded


def in_namespace(netns: str) -> bool:
    own, theirs = os.stat(f"/proc/{os.getpid()}/ns/net"), os.stat(netns)
    return (own.st_dev, own.st_ino) == (theirs.st_dev, theirs.st_ino)


def token_registry(testbed: Testbed) -> str:
    if not testbed.env.get("TESTBED_TOKEN_REGISTRY"):
        pytest.skip("this test bed has no token registry: run tests/testbed/up")
    return testbed["TESTBED_TOKEN_REGISTRY"]


@pytest.fixture(scope="module")
def token_bed(testbed: Testbed) -> Iterator[TokenBed]:
    registry = token_registry(testbed)
    if not in_namespace(testbed["TESTBED_NETNS"]):
        pytest.skip("outside the test bed's network namespace: run under tests/testbed/exec")
    context = ssl.create_default_context(cafile=testbed["TESTBED_CA"])
    with httpx.Client(verify=context, trust_env=False, timeout=30) as http:
        yield TokenBed(
            registry=registry,
            realm=testbed["TESTBED_TOKEN_REALM"],
            service=testbed["TESTBED_TOKEN_SERVICE"],
            user=testbed["TESTBED_AUTH_USER"],
            password=testbed["TESTBED_AUTH_PASSWORD"],
            log=Path(testbed["TESTBED_TOKEN_LOG"]),
            http=http,
        )


def test_skopeo_copies_into_the_token_registry_and_reads_back_by_digest(
    testbed: Testbed, tmp_path: Path
) -> None:
    registry = token_registry(testbed)
    creds = f"{testbed['TESTBED_AUTH_USER']}:{testbed['TESTBED_AUTH_PASSWORD']}"
    digestfile = tmp_path / "digest"
    copied = testbed.skopeo(
        "copy",
        "--src-tls-verify=false",
        "--dest-creds",
        creds,
        "--dest-cert-dir",
        testbed["TESTBED_CERTS_DIR"],
        "--digestfile",
        str(digestfile),
        f"docker://{testbed.registry}/library/busybox:1.35",
        f"docker://{registry}/testbed/busybox:token",
    )
    assert copied.returncode == 0, copied.stderr
    digest = digestfile.read_text().strip()
    assert digest == testbed["TESTBED_BUSYBOX_DIGEST"]
    by_digest = f"docker://{registry}/testbed/busybox@{digest}"
    inspected = testbed.skopeo(
        "inspect", "--creds", creds, "--cert-dir", testbed["TESTBED_CERTS_DIR"], by_digest
    )
    assert inspected.returncode == 0, inspected.stderr
    assert json.loads(inspected.stdout)["Digest"] == digest
    anonymous = testbed.skopeo("inspect", "--cert-dir", testbed["TESTBED_CERTS_DIR"], by_digest)
    assert anonymous.returncode != 0, "the token registry served an anonymous pull"


def test_the_registry_challenge_names_the_realm_and_service(token_bed: TokenBed) -> None:
    answer = token_bed.http.get(f"https://{token_bed.registry}/v2/")
    assert answer.status_code == 401
    assert answer.headers["WWW-Authenticate"] == (
        f'Bearer realm="{token_bed.realm}",service="{token_bed.service}"'
    )


def test_a_token_grants_exactly_the_pull_and_push_asked_for(token_bed: TokenBed) -> None:
    pull = token_bed.user_token("repository:testbed/exact:pull")
    assert jwt_part(pull, 1)["access"] == [
        {"type": "repository", "name": "testbed/exact", "actions": ["pull"]}
    ]
    more = token_bed.user_token(
        "repository:testbed/exact:pull",
        "repository:testbed/exact:push,delete",
        "repository:testbed/other:*",
        "registry:catalog:*",
    )
    header, claims = jwt_part(more, 0), jwt_part(more, 1)
    assert claims["access"] == [
        {"type": "repository", "name": "testbed/exact", "actions": ["pull", "push"]}
    ]
    assert (claims["sub"], claims["aud"]) == (token_bed.user, token_bed.service)
    assert header["alg"] == "RS256"
    assert header["x5c"], "no certificate chain in the header: distribution 2.8 wants one"


def test_a_pull_token_cannot_start_an_upload_and_a_push_token_can(token_bed: TokenBed) -> None:
    repo = "testbed/upload"
    pull = token_bed.user_token(f"repository:{repo}:pull")
    refused = token_bed.start_upload(repo, pull)
    assert refused.status_code == 401, refused.text
    assert 'error="insufficient_scope"' in refused.headers["WWW-Authenticate"]
    push = token_bed.user_token(f"repository:{repo}:pull,push")
    started = token_bed.start_upload(repo, push)
    assert started.status_code == 202, started.text
    # cancelling it is a DELETE: the `delete` action, which no token grants
    cancel = token_bed.http.delete(
        urljoin(f"https://{token_bed.registry}/", started.headers["Location"]),
        headers={"Authorization": f"Bearer {push}"},
    )
    assert cancel.status_code == 401
    assert 'scope="repository:testbed/upload:delete"' in cancel.headers["WWW-Authenticate"]
    # a push token is for its own repository only
    elsewhere = token_bed.start_upload("testbed/elsewhere", push)
    assert elsewhere.status_code == 401, elsewhere.text


def test_the_oauth_post_form_and_its_refresh_token(token_bed: TokenBed) -> None:
    repo = "testbed/oauth"
    answer = token_bed.oauth(
        grant_type="password",
        username=token_bed.user,
        password=token_bed.password,
        scope=f"repository:{repo}:pull,push",
        client_id="pipeline-tests",
        access_type="offline",
    )
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["scope"] == f"repository:{repo}:pull,push"
    assert body["expires_in"] > 0
    assert token_bed.start_upload(repo, body["access_token"]).status_code == 202
    refreshed = token_bed.oauth(
        grant_type="refresh_token",
        refresh_token=body["refresh_token"],
        scope=f"repository:{repo}:pull",
        client_id="pipeline-tests",
    )
    assert refreshed.status_code == 200, refreshed.text
    pull_only = token_bed.start_upload(repo, refreshed.json()["access_token"])
    assert pull_only.status_code == 401
    assert 'error="insufficient_scope"' in pull_only.headers["WWW-Authenticate"]


@pytest.mark.parametrize(
    ("form", "status", "error"),
    [
        ({"grant_type": "password", "password": "wrong"}, 401, "invalid_grant"),
        ({"grant_type": "password", "username": "nobody"}, 401, "invalid_grant"),
        ({"grant_type": "refresh_token", "refresh_token": "made-up"}, 400, "invalid_grant"),
        ({"grant_type": "client_credentials"}, 400, "unsupported_grant_type"),
        ({"grant_type": "password", "client_id": ""}, 400, "invalid_request"),
    ],
)
def test_the_oauth_post_form_refuses(
    token_bed: TokenBed, form: dict[str, str], status: int, error: str
) -> None:
    answer = token_bed.oauth(
        **{
            "username": token_bed.user,
            "password": token_bed.password,
            "scope": "repository:testbed/oauth:pull",
            "client_id": "pipeline-tests",
            **form,
        }
    )
    assert (answer.status_code, answer.json()["error"]) == (status, error)
    assert "access_token" not in answer.json()


def test_wrong_credentials_get_401_from_the_token_service(token_bed: TokenBed) -> None:
    wrong = token_bed.token("repository:testbed/upload:pull", auth=(token_bed.user, "wrong"))
    assert wrong.status_code == 401
    assert "token" not in wrong.json()
    stranger = token_bed.token("repository:testbed/upload:pull", auth=("nobody", "x"))
    assert stranger.status_code == 401


def test_anonymous_gets_a_token_that_grants_nothing(token_bed: TokenBed) -> None:
    answer = token_bed.token("repository:testbed/upload:pull,push")
    assert answer.status_code == 200, answer.text
    token = answer.json()["token"]
    assert jwt_part(token, 1)["access"] == []
    upload = token_bed.start_upload("testbed/upload", token)
    assert upload.status_code == 401
    assert 'error="insufficient_scope"' in upload.headers["WWW-Authenticate"]
    manifest = token_bed.http.get(
        f"https://{token_bed.registry}/v2/testbed/busybox/manifests/token",
        headers={"Authorization": f"Bearer {token}"},
    )
    assert manifest.status_code == 401


def test_the_token_log_says_what_was_granted_and_never_a_secret(token_bed: TokenBed) -> None:
    repo = f"testbed/logged-{uuid.uuid4().hex[:8]}"
    token = token_bed.user_token(f"repository:{repo}:push")
    wrong_password = f"wrong-{uuid.uuid4().hex}"
    assert token_bed.token(auth=(token_bed.user, wrong_password)).status_code == 401
    text = token_bed.log.read_text()
    entries = [json.loads(line) for line in text.splitlines() if line.startswith("{")]
    mine = [e for e in entries if e.get("scopes") == [f"repository:{repo}:push"]]
    assert len(mine) == 1
    assert mine[0]["method"] == "GET"
    assert mine[0]["user"] == token_bed.user
    assert mine[0]["granted"] == [{"type": "repository", "name": repo, "actions": ["push"]}]
    assert token_bed.password not in text
    assert wrong_password not in text
    assert token.split(".")[2] not in text


@pytest.mark.engine
def test_the_engine_pushes_to_the_token_registry(
    engine_env: dict[str, str], testbed: Testbed, monkeypatch: pytest.MonkeyPatch
) -> None:
    registry = token_registry(testbed)
    for key, value in engine_env.items():
        if key.startswith(("_EXPERIMENTAL_DAGGER", "DAGGER_", "DO_NOT_TRACK")):
            monkeypatch.setenv(key, value)
    marker = uuid.uuid4().hex

    async def push() -> str:
        async with dagger.connection(dagger.Config(log_output=None)):
            password = dag.set_secret("testbed-token-password", testbed["TESTBED_AUTH_PASSWORD"])
            return await (
                dag.container()
                .from_("busybox:1.35")
                .with_new_file("/marker", marker)
                .with_registry_auth(registry, testbed["TESTBED_AUTH_USER"], password)
                .publish(f"{registry}/smoke/token:engine")
            )

    published = anyio.run(push)
    assert published.startswith(f"{registry}/smoke/token:engine@sha256:")
    creds = f"{testbed['TESTBED_AUTH_USER']}:{testbed['TESTBED_AUTH_PASSWORD']}"
    inspected = testbed.skopeo(
        "inspect",
        "--creds",
        creds,
        "--cert-dir",
        testbed["TESTBED_CERTS_DIR"],
        "docker://" + published.replace(":engine@", "@"),
    )
    assert inspected.returncode == 0, inspected.stderr
    log = Path(testbed["TESTBED_TOKEN_LOG"]).read_text().splitlines()
    granted = [json.loads(line).get("granted", []) for line in log if line.startswith("{")]
    wanted = {"type": "repository", "name": "smoke/token", "actions": ["pull", "push"]}
    assert any(wanted in access for access in granted), "no push token in the token service's log"
