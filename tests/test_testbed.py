"""The test bed itself (tests/testbed/): what `up` wrote, what its registries serve, its token
registry and token service (bearer tokens as Docker Hub, Harbor and GitLab hand them out), and a
smoke test of the engine it runs: golang builds hello world, the binary's File goes into
busybox, the image runs, exports, and is published to both registries and pulled back."""

from __future__ import annotations

import base64
import json
import os
import re
import socket
import ssl
import subprocess
import time
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

from tests.conftest import (
    NO_ENGINE,
    ROOT,
    DoomedEngine,
    Testbed,
    start_fresh_runner,
    stop_fresh_runner,
)

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
    "TESTBED_REFERRERS_REGISTRY",
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


def test_a_name_lookup_in_the_namespace_fails_at_once(testbed: Testbed) -> None:
    """No uplink, and no nameserver either: the host's are unreachable from the namespace, so a
    lookup fails at once (cosign v2's TUF check waited 10 s on one that never answered)."""
    assert testbed.env["TESTBED_NETNS"]  # the testbed fixture: this process runs inside it
    servers = [
        line.split()[1]
        for line in Path("/etc/resolv.conf").read_text().splitlines()
        if line.startswith("nameserver") and ":" not in line
    ]
    for server in servers:
        route = subprocess.run(["ip", "route", "get", server], capture_output=True, text=True)
        assert route.returncode != 0, f"{server} is routed: {route.stdout}"
    looked_up = subprocess.run(
        ["getent", "hosts", "tuf-repo-cdn.sigstore.dev"], capture_output=True, timeout=5
    )
    assert looked_up.returncode != 0


def test_the_module_host_is_in_a_session_of_its_own(testbed: Testbed) -> None:
    """apache signals its whole process group when it stops: started in its caller's, it ended
    the caller of `down` (.ci/run, when its own `up` had started it)."""
    assert testbed.env["TESTBED_NETNS"]
    pid = int(Path("/run/pipeline-testbed/module-host.pid").read_text())
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2 :].split()  # state ppid pgrp session ...
    assert Path(f"/proc/{pid}/comm").read_text().strip() == "apache2"
    assert int(fields[2]) == int(fields[3]) == pid, stat


@pytest.mark.engine
def test_env_file_gives_the_engine_both_ways(testbed: Testbed) -> None:
    if testbed.env.get("TESTBED_ENGINE") != "1":
        pytest.skip(NO_ENGINE)
    assert testbed["_EXPERIMENTAL_DAGGER_RUNNER_HOST"].startswith("unix://")
    host = testbed["TESTBED_ENGINE_TLS_HOST"]
    assert host.startswith(f"tls://{testbed['TESTBED_ENGINE_TLS']}?")
    query = dict(part.split("=", 1) for part in host.partition("?")[2].split("&"))
    assert query == {
        "ca_path": testbed["TESTBED_CA"],
        "cert_path": testbed["TESTBED_ENGINE_TLS_CLIENT_CERT"],
        "key_path": testbed["TESTBED_ENGINE_TLS_CLIENT_KEY"],
    }
    for key in ("TESTBED_OTHER_CA", "TESTBED_OTHER_CA_CLIENT_CERT", "TESTBED_OTHER_CA_CLIENT_KEY"):
        assert Path(testbed[key]).is_file(), key
    for path in (testbed["TESTBED_ENGINE_TLS_CLIENT_KEY"], testbed["TESTBED_OTHER_CA_CLIENT_KEY"]):
        assert Path(path).stat().st_mode & 0o077 == 0, f"{path} is readable by others"


@pytest.mark.engine
def test_the_engine_collects_its_garbage_as_lib_sh_says(testbed: Testbed) -> None:
    """The engine's GOGC is lib.sh's TB_ENGINE_GOGC, not Go's default (an export's bytes cost a
    third more of the engine's CPU at the default)."""
    if testbed.env.get("TESTBED_ENGINE") != "1":
        pytest.skip(NO_ENGINE)
    said = subprocess.run(
        ["bash", "-c", '. tests/testbed/lib.sh && echo "$TB_ENGINE_GOGC"'],
        cwd=ROOT, capture_output=True, text=True, check=True,
    )  # fmt: skip
    wanted = said.stdout.strip()
    assert wanted.isdigit(), said
    assert int(wanted) > 100, said
    pid = Path(testbed["TESTBED_ENGINE_PID"]).read_text().strip()
    environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    assert f"GOGC={wanted}".encode() in environ, [e for e in environ if e.startswith(b"GOGC")]


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


# --- the engine shared over mutual TLS ------------------------------------------------------
# stunnel at TESTBED_ENGINE_TLS in front of the engine's unix socket: it admits only clients
# whose certificate the test bed's CA signed, and hands their bytes to the engine.

ACCEPTED_LINE = "Certificate accepted at depth=0"
REFUSED_LINE = "SSL_accept: "


@dataclass(frozen=True)
class EngineTLS:
    """The engine through the TLS terminator: its runner host (tls://…?ca_path=…&cert_path=…
    &key_path=…), its address, the test bed's CA, a client certificate that CA signed, one
    from an unrelated CA, and the terminator's log."""

    __test__ = False

    host: str
    address: tuple[str, int]
    ca: str
    client: tuple[str, str]
    other_ca_client: tuple[str, str]
    log: Path
    env: dict[str, str]

    def runner_host(self, client: tuple[str, str] | None) -> str:
        """The runner host with this client certificate (or none) and the test bed's CA."""
        host = f"tls://{self.address[0]}:{self.address[1]}?ca_path={self.ca}"
        if client is not None:
            host += f"&cert_path={client[0]}&key_path={client[1]}"
        return host

    def log_lines(self, since: int, containing: str, wait: float = 3.0) -> list[str]:
        """The terminator's log lines from byte offset `since` that contain `containing`,
        waiting up to `wait` seconds for one (it logs a refusal after it sent the alert)."""
        deadline = time.monotonic() + wait
        while True:
            with self.log.open("rb") as log:
                log.seek(since)
                lines = log.read().decode(errors="replace").splitlines()
            found = [line for line in lines if containing in line]
            if found or time.monotonic() > deadline:
                return found
            time.sleep(0.1)


@pytest.fixture(scope="module")
def engine_tls(testbed: Testbed, engine_env: dict[str, str]) -> EngineTLS:
    host = testbed.env.get("TESTBED_ENGINE_TLS_HOST")
    if not host:
        pytest.skip(
            "this test bed runs no TLS terminator in front of the engine: run tests/testbed/up"
        )
    if not in_namespace(testbed["TESTBED_NETNS"]):
        pytest.skip("outside the test bed's network namespace: run under tests/testbed/exec")
    address, _, port = testbed["TESTBED_ENGINE_TLS"].rpartition(":")
    return EngineTLS(
        host=host,
        address=(address, int(port)),
        ca=testbed["TESTBED_CA"],
        client=(
            testbed["TESTBED_ENGINE_TLS_CLIENT_CERT"],
            testbed["TESTBED_ENGINE_TLS_CLIENT_KEY"],
        ),
        other_ca_client=(
            testbed["TESTBED_OTHER_CA_CLIENT_CERT"],
            testbed["TESTBED_OTHER_CA_CLIENT_KEY"],
        ),
        log=Path(testbed["TESTBED_ENGINE_TLS_LOG"]),
        env={**engine_env, "_EXPERIMENTAL_DAGGER_RUNNER_HOST": host},
    )


@dataclass(frozen=True)
class Attempt:
    """One TLS connection to the terminator: the first bytes that came back from behind it (the
    engine's HTTP answer), or the reason OpenSSL gave for the alert that ended it."""

    answer: bytes
    refused: str | None
    seconds: float


def tls_attempt(
    bed: EngineTLS, client: tuple[str, str] | None, version: ssl.TLSVersion, request: bytes = b""
) -> Attempt:
    """Connect, handshake (the client checks the terminator's certificate against the test
    bed's CA), send `request` if any, and read for up to 10 s. In TLS 1.3 the server judges the
    client's certificate after the client's side of the handshake is done, so a refusal comes
    as an alert in place of the first read; that is why a refused client sends nothing (writing
    into a connection the terminator has just closed can end in a reset that loses the
    alert)."""
    context = ssl.create_default_context(cafile=bed.ca)
    context.minimum_version = context.maximum_version = version
    if client is not None:
        context.load_cert_chain(*client)
    start = time.monotonic()
    try:
        with (
            socket.create_connection(bed.address, timeout=10) as raw,
            context.wrap_socket(raw, server_hostname=bed.address[0]) as tls,
        ):
            if request:
                tls.sendall(request)
            answer = tls.recv(64)
    except ssl.SSLError as error:
        return Attempt(b"", f"{error.reason or type(error).__name__}", time.monotonic() - start)
    except TimeoutError:
        answer = b""  # neither refused nor answered
    return Attempt(answer, None, time.monotonic() - start)


TLS_VERSIONS = [
    pytest.param(ssl.TLSVersion.TLSv1_2, id="TLSv1.2"),
    pytest.param(ssl.TLSVersion.TLSv1_3, id="TLSv1.3"),
]


@pytest.mark.engine
@pytest.mark.parametrize("version", TLS_VERSIONS)
def test_the_terminator_admits_a_client_the_test_bed_ca_signed(
    engine_tls: EngineTLS, version: ssl.TLSVersion
) -> None:
    request = b"GET / HTTP/1.1\r\nHost: engine\r\nConnection: close\r\n\r\n"
    attempt = tls_attempt(engine_tls, engine_tls.client, version, request)
    assert attempt.refused is None
    # the engine's own HTTP server answered (whatever it thinks of GET /)
    assert attempt.answer.startswith(b"HTTP/1.1 "), attempt.answer


@pytest.mark.engine
@pytest.mark.parametrize("version", TLS_VERSIONS)
@pytest.mark.parametrize(
    ("who", "reasons"),
    [
        # TLS 1.2 says handshake_failure, TLS 1.3 has an alert of its own for it
        ("no certificate", {"SSLV3_ALERT_HANDSHAKE_FAILURE", "TLSV13_ALERT_CERTIFICATE_REQUIRED"}),
        ("other CA", {"TLSV1_ALERT_UNKNOWN_CA"}),
    ],
)
def test_the_terminator_refuses_at_the_handshake(
    engine_tls: EngineTLS, version: ssl.TLSVersion, who: str, reasons: set[str]
) -> None:
    client = engine_tls.other_ca_client if who == "other CA" else None
    offset = engine_tls.log.stat().st_size
    attempt = tls_attempt(engine_tls, client, version)
    assert attempt.answer == b"", "the engine answered a client the terminator should refuse"
    assert attempt.refused in reasons
    assert attempt.seconds < 5, f"refused only after {attempt.seconds:.1f}s"
    refusals = engine_tls.log_lines(offset, REFUSED_LINE)
    assert refusals, "the terminator's log does not show the refusal"


@pytest.mark.engine
def test_the_dagger_cli_reaches_the_engine_through_the_terminator(engine_tls: EngineTLS) -> None:
    offset = engine_tls.log.stat().st_size
    done = subprocess.run(
        ["dagger", "core", "version"],
        env=engine_tls.env,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    # A release (v0.21.11) or an engine built from a branch (v0.21.9-<date>-dev-<commit>).
    assert re.fullmatch(r"v\d+\.\d+\.\d+(-[\w.-]+)?", done.stdout.strip()), done.stdout
    accepted = engine_tls.log_lines(offset, ACCEPTED_LINE)
    assert accepted, "the CLI did not go through the terminator"


@pytest.mark.engine
def test_the_sdk_runs_a_container_through_the_terminator(
    engine_tls: EngineTLS, monkeypatch: pytest.MonkeyPatch
) -> None:
    for key, value in engine_tls.env.items():
        if key.startswith(("_EXPERIMENTAL_DAGGER", "DAGGER_", "DO_NOT_TRACK")):
            monkeypatch.setenv(key, value)
    monkeypatch.delenv("DAGGER_SESSION_PORT", raising=False)
    monkeypatch.delenv("DAGGER_SESSION_TOKEN", raising=False)
    marker = uuid.uuid4().hex

    async def run() -> str:
        async with dagger.connection(dagger.Config(log_output=None)):
            return await dag.container().from_("busybox:1.35").with_exec(["echo", marker]).stdout()

    assert anyio.run(run) == f"{marker}\n"


# What the dagger CLI does when the terminator refuses it (measured with 0.21.11, with no
# certificate and with the other CA's: the same, as Go's TLS client does not even offer a
# certificate the server's list of CAs does not name): it tries again about once a second for
# 10 minutes (600.2 s), showing only "connecting to engine" (each attempt's "error reading
# server preface: remote error: tls: certificate required" only with --debug), then exits 1
# with "Error: start engine: new client: context deadline exceeded". The Python SDK waits for
# it and raises SessionError "Failed to start Dagger engine session: No connection params"
# after 600.1 s. A pipeline that connects through TLS must bound that wait itself.
CLI_REFUSED_WATCH = 8.0


@pytest.mark.engine
@pytest.mark.parametrize("who", ["no certificate", "other CA"])
def test_the_dagger_cli_keeps_retrying_a_refused_certificate(
    engine_tls: EngineTLS, who: str
) -> None:
    client = engine_tls.other_ca_client if who == "other CA" else None
    offset = engine_tls.log.stat().st_size
    env = {**engine_tls.env, "_EXPERIMENTAL_DAGGER_RUNNER_HOST": engine_tls.runner_host(client)}
    start = time.monotonic()
    with subprocess.Popen(
        ["dagger", "--progress", "plain", "--debug", "core", "version"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as cli:
        try:
            stdout, stderr = cli.communicate(timeout=CLI_REFUSED_WATCH)
        except subprocess.TimeoutExpired:
            cli.kill()
            stdout, stderr = cli.communicate()
        gave_up = cli.returncode if time.monotonic() - start < CLI_REFUSED_WATCH else None
    assert gave_up != 0, f"the CLI connected with {who}: {stdout}"
    assert gave_up is None, (
        f"the CLI gave up after {time.monotonic() - start:.1f}s: {stderr[-500:]}"
    )
    assert "tls: certificate required" in stderr
    refusals = engine_tls.log_lines(offset, REFUSED_LINE)
    assert len(refusals) >= CLI_REFUSED_WATCH / 3, f"only {len(refusals)} attempts were refused"


@pytest.mark.alone
@pytest.mark.runner
@pytest.mark.engine
def test_a_fresh_runner_starts_empty_and_pulls_from_the_test_beds_registry(
    testbed: Testbed, engine_env: dict[str, str]
) -> None:
    """`up --fresh-runner`: a second engine and dockerd on emptied state, in a namespace whose
    registry serves what the test bed's does; started again, it is empty again. Between the
    two, the runner's namespace is deleted (a `down` cut short): its registry lives on, in the
    old namespace, and the second start must serve one in the new."""
    runner_netns = Path(testbed["TESTBED_NETNS"]).name + "-runner"  # lib.sh's TB_RUNNER
    try:
        for n in range(2):
            if n:
                subprocess.run(["ip", "netns", "del", runner_netns], check=True)
            said = start_fresh_runner()
            docker = [testbed["TESTBED_DOCKER"], "-H", said["runner docker"]]
            images = subprocess.run(
                [*docker, "images", "-q"], capture_output=True, text=True, check=True
            )
            assert images.stdout.strip() == "", "the runner's dockerd is not empty"
            pulled = subprocess.run(
                [*docker, "pull", f"{testbed.registry}/library/busybox:1.35"],
                capture_output=True, text=True, check=False,
            )  # fmt: skip
            assert pulled.returncode == 0, pulled.stderr
            version = subprocess.run(
                ["dagger", "core", "version"],
                env={**engine_env, "_EXPERIMENTAL_DAGGER_RUNNER_HOST": said["runner host"]},
                capture_output=True, text=True, check=False, timeout=120,
            )  # fmt: skip
            assert version.returncode == 0, version.stderr[-2000:]
    finally:
        stop_fresh_runner()


@pytest.mark.disruptive  # the fresh runner is one
@pytest.mark.runner
@pytest.mark.engine
def test_a_kept_runner_starts_on_what_its_engine_had_built(
    doomed_engine: DoomedEngine, tmp_path: Path
) -> None:
    """`up --fresh-runner --kept` (the doomed engines'): its engine starts on the state another
    one left after the same build (`down --fresh-runner --keep`), and finds the build in its
    cache: not an empty state, nor one the engine threw away at its start."""
    report = tmp_path / "report.json"
    ran = doomed_engine.pipeline(
        "multistage", "--source", str(ROOT / "go-src"), "--runtime-image", "busybox:1.35",
        "--no-run", "--no-output", "--json", str(report),
    )  # fmt: skip
    assert ran.returncode == 0, ran.stderr
    assert json.loads(report.read_text())["cache"] == "warm"


PLANTED_RULES = """*nat
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
:DOCKER - [0:0]
:CNI-0a1b - [0:0]
-A PREROUTING -m addrtype --dst-type LOCAL -j DOCKER
-A POSTROUTING -s 10.87.0.5/32 -m comment --comment "name: \\"dagger\\" id: \\"abc\\"" -j CNI-0a1b
-A CNI-0a1b -d 10.87.0.0/16 -m comment --comment "name: \\"dagger\\" id: \\"abc\\"" -j ACCEPT
-A CNI-0a1b ! -d 224.0.0.0/4 -m comment --comment "name: \\"dagger\\" id: \\"abc\\"" -j MASQUERADE
COMMIT
*filter
:INPUT ACCEPT [0:0]
:FORWARD DROP [0:0]
:OUTPUT ACCEPT [0:0]
:DOCKER-USER - [0:0]
:CNI-FORWARD - [0:0]
:CNI-ADMIN - [0:0]
-A FORWARD -j DOCKER-USER
-A FORWARD -m comment --comment "CNI firewall plugin rules" -j CNI-FORWARD
-A CNI-FORWARD -m comment --comment "CNI firewall plugin admin overrides" -j CNI-ADMIN
-A CNI-FORWARD -s 10.87.0.5/32 -j ACCEPT
-A CNI-FORWARD -d 10.87.0.5/32 -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
COMMIT
"""  # what the bridge and firewall plugins leave for one namespace, beside Docker's rules


def test_a_killed_engines_network_is_forgotten_before_the_next_engine_starts(
    tmp_path: Path,
) -> None:
    """cni_forget (tests/testbed/lib.sh), which `up` runs before it starts an engine, in a
    namespace of the test's own: what a killed engine's network left (the CNI plugins'
    iptables chains and rules, its IP leases and cached results, its DNS names and its
    dnsmasq) is gone; Docker's rules, another network's leases and the dnsmasq pidfile stay."""
    if os.geteuid() != 0:
        pytest.skip("network namespaces need root")
    name = f"pipeline-test-cni-{uuid.uuid4().hex[:8]}"
    netns = f"/run/netns/{name}"
    cni, dnsname = tmp_path / "cni", tmp_path / "dnsname"
    planted = {
        cni / "networks" / "dagger" / "10.87.0.5": "abc",
        cni / "networks" / "dagger" / "last_reserved_ip.0": "10.87.0.5",
        cni / "networks" / "runner" / "10.88.0.7": "def",
        cni / "results" / "dagger-abc-eth0": "{}",
        cni / "results" / "cni-loopback-abc-lo": "{}",
        cni / "results" / "runner-def-eth0": "{}",
        cni / "results" / "cni-loopback-def-lo": "{}",
        dnsname / "dagger" / "addnhosts": "10.87.0.5 abc\n",
        dnsname / "dagger" / "pidfile": "4242\n",
        dnsname / "dagger" / "dnsmasq.conf": "port=0\n",  # no DNS: it only waits
    }
    for path, content in planted.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content)
    states = {"TESTBED_CNI_STATE": str(cni), "TESTBED_DNSNAME_STATE": str(dnsname)}
    server: subprocess.Popen[bytes] | None = None
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        inside = ["nsenter", f"--net={netns}"]
        subprocess.run([*inside, "iptables-restore"], input=PLANTED_RULES, text=True, check=True)
        conf = dnsname / "dagger" / "dnsmasq.conf"
        server = subprocess.Popen(
            [*inside, "dnsmasq", "--keep-in-foreground", "-u", "root", f"--conf-file={conf}"]
        )  # the engine's, left behind: it outlives the engine
        forgot = subprocess.run(
            ["bash", "-c", '. tests/testbed/lib.sh && cni_forget "$1" dagger', "bash", netns],
            cwd=ROOT,
            env={**os.environ, **states},
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        assert forgot.returncode == 0, forgot.stderr
        rules = subprocess.run(
            [*inside, "iptables-save"], capture_output=True, text=True, check=True
        ).stdout
        stopped = server.wait(timeout=10)
    finally:
        if server is not None and server.poll() is None:
            server.kill()
        subprocess.run(["ip", "netns", "del", name], check=False)
    assert stopped == 0, "the network's dnsmasq was not stopped"
    assert "CNI" not in rules, rules
    assert "-A PREROUTING -m addrtype --dst-type LOCAL -j DOCKER" in rules
    assert "-A FORWARD -j DOCKER-USER" in rules
    left = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*") if p.is_file())
    assert left == [
        "cni/networks/runner/10.88.0.7",
        "cni/results/cni-loopback-def-lo",
        "cni/results/runner-def-eth0",
        "dnsname/dagger/addnhosts",
        "dnsname/dagger/dnsmasq.conf",
        "dnsname/dagger/pidfile",
    ]
    assert (dnsname / "dagger" / "addnhosts").read_text() == ""
