"""Talking to a registry the way hosted registries need: oras' registry client with our
do_request. Every request oras makes goes through it: a bearer token per scope (Docker's token
protocol: a pull token does not push), a timeout on every request, a bounded retry of 429 and
502-504 that honours Retry-After, and a Deadline that stops a push for real when it is over its
time or interrupted. Its failures are one line each (RegistryError)."""

from __future__ import annotations

import re
import socket
import ssl
from ipaddress import ip_address
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import oras.defaults
import oras.provider
import requests
import requests.adapters

from pipeline.errors import PASSWORD_ENV, RegistryError, auth_failed
from pipeline.image.oci import INDEX, MANIFEST
from pipeline.refs import ImageRef
from pipeline.registry.access import Deadline, Login
from pipeline.registry.answers import check_answer, one_line_errors, request_of

TRIES = 4  # a request answered 429 or 502-504 is sent again, up to this many times in all
_RETRIED = (429, 502, 503, 504)


def _is_loopback(host: str) -> bool:
    name = host.rsplit(":", 1)[0] if not host.endswith("]") else host
    if name == "localhost":
        return True
    try:
        return ip_address(name.strip("[]")).is_loopback
    except ValueError:
        return False


def _speaks_tls(host: str, deadline: Deadline) -> bool:
    name, _, port = host.rpartition(":")
    context = ssl.create_default_context()
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
    wait = min(5.0, deadline.left(host))
    try:
        with (
            socket.create_connection((name or host, int(port or 443)), timeout=wait) as raw,
            context.wrap_socket(raw),
        ):
            return True
    except (OSError, ssl.SSLError, ValueError):
        return False


class _TrustAlso(requests.adapters.HTTPAdapter):
    """HTTPS that trusts the system's CAs and one more (--registry-ca): token realms and blob
    redirects often live on hosts with public certificates."""

    def __init__(self, ca: Path) -> None:
        self._context = ssl.create_default_context()
        self._context.load_verify_locations(cafile=str(ca))
        super().__init__()

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        kwargs["ssl_context"] = self._context
        super().init_poolmanager(*args, **kwargs)


_PARAM = re.compile(r'(\w+)="([^"]*)"')


class Client(oras.provider.Registry):  # type: ignore[misc]
    """oras' registry client, with our do_request: see the module's docstring."""

    def __init__(
        self, ref: ImageRef, login: Login, deadline: Deadline, *, actions: str = "pull,push"
    ) -> None:
        self.ref, self.login, self.deadline = ref, login, deadline
        host = ref.endpoint
        # As docker does for registries on loopback: plain HTTP where they do not speak TLS.
        insecure = _is_loopback(host) and not _speaks_tls(host, deadline)
        super().__init__(hostname=host, insecure=insecure, auth_backend="basic")
        if login.ca is not None:
            self.session.mount("https://", _TrustAlso(login.ca))
        self.scope = f"repository:{ref.repository}:{actions}"  # a reader asks for "pull"
        self._tokens: dict[str, str] = {}  # scope → bearer token
        self._basic = False  # the registry asks for basic auth
        # Blobs another repository of this registry holds (a base's layers): digest → that
        # repository. They are mounted from there, not sent (the token then reads it too).
        self.mounts: dict[str, str] = {}
        self.sent = 0  # bytes of the blobs this client uploaded

    def _credentials(self) -> tuple[str, str] | None:
        if self.login.username and self.login.password:
            return self.login.username, self.login.password.value
        return None

    def _token(self, challenge: dict[str, str], scope: str) -> str:
        """A bearer token for `scope` (and what the challenge asked for), from its realm."""
        realm = challenge.get("realm", "")
        mounted = (f"repository:{r}:pull" for r in sorted(set(self.mounts.values())))
        asked = {s for s in (scope, challenge.get("scope", ""), *mounted) if s}
        params = [("service", challenge.get("service", ""))] + [("scope", s) for s in asked]
        answer = self.session.get(
            realm,
            params=params,
            auth=self._credentials(),
            timeout=self.deadline.timeout(self.ref.registry),
        )
        if answer.status_code == 401:
            raise auth_failed(self.ref.registry)
        if answer.status_code != 200:
            raise RegistryError(
                f"token service {urlsplit(realm).netloc} of {self.ref.registry} answered "
                f"HTTP {answer.status_code}"
            )
        document = answer.json()
        token = document.get("token") or document.get("access_token")
        if not isinstance(token, str) or not token:
            raise RegistryError(f"token service {urlsplit(realm).netloc} gave no token")
        return token

    def _authorize(self, response: requests.Response, scope: str) -> bool:
        """Learn from a 401 how to authenticate; whether sending again may help."""
        header = response.headers.get("WWW-Authenticate", "")
        scheme, _, rest = header.partition(" ")
        if scheme.lower() == "bearer":
            self._tokens[scope] = self._token(dict(_PARAM.findall(rest)), scope)
            return True
        if scheme.lower() == "basic" and not self._basic and self._credentials():
            self._basic = True
            return True
        return False

    def do_request(
        self,
        url: str,
        method: str = "GET",
        data: dict[str, Any] | bytes | None = None,
        headers: dict[str, str] | None = None,
        json: dict[str, Any] | None = None,
        stream: bool = False,
    ) -> requests.Response:
        """One request to the registry, authenticated for our repository's scope, sent again
        after a 401 (with a token for the scope asked) and after 429/502-504 (after the
        Retry-After the registry asks for), within the deadline."""
        registry = self.ref.registry
        authorized = False
        for tried in range(1, TRIES + 1):
            sent = dict(headers or {})
            token = self._tokens.get(self.scope)
            if token is not None:
                sent["Authorization"] = f"Bearer {token}"
            credentials = self._credentials()
            auth = credentials if self._basic and token is None else None
            with one_line_errors(self.ref):
                response: requests.Response = self.session.request(
                    method,
                    url,
                    data=data,
                    json=json,
                    headers=sent,
                    stream=stream,
                    auth=auth,
                    timeout=self.deadline.timeout(registry),
                )
            if response.status_code == 401 and not authorized:
                authorized = True
                if credentials is None and response.headers.get("WWW-Authenticate"):
                    raise RegistryError(
                        f"registry {registry} wants a login: give --registry-username and "
                        f"{PASSWORD_ENV}"
                    )
                if self._authorize(response, self.scope):
                    continue
            if response.status_code in _RETRIED and tried < TRIES:
                self._wait(response, tried)
                continue
            break
        if response.status_code in (401, 403):
            self._refused(response)
        return response

    def _refused(self, response: requests.Response) -> None:
        """A 401 or 403 that a token for our scope did not cure: the login lacks the right."""
        if "insufficient_scope" in response.headers.get("WWW-Authenticate", "") + response.text:
            raise RegistryError(
                f"{self.ref.registry}: the login {self.login.username} may not push to "
                f"{self.ref.repository} (insufficient_scope)"
            )
        check_answer(response, self.ref, request_of(response))

    def _wait(self, response: requests.Response, tried: int) -> None:
        """Sleep as long as the registry asks (Retry-After, in seconds), else 1, 2, 4 s."""
        asked = response.headers.get("Retry-After", "")
        wait = float(asked) if asked.strip().isdigit() else 2.0 ** (tried - 1)
        left = self.deadline.left(self.ref.registry)
        if wait >= left:
            raise RegistryError(
                f"registry {self.ref.registry} asks to wait {wait:.0f}s (HTTP "
                f"{response.status_code}), longer than the push has left ({left:.0f}s)"
            )
        self.deadline.stop.wait(wait)

    def upload_blob(
        self,
        blob: str,
        container: Any,
        layer: dict[str, Any],
        do_chunked: bool = False,
        chunk_size: int = oras.defaults.default_chunksize,
    ) -> requests.Response:
        """oras' upload of a blob, but one the repository has is not sent, one of `mounts`
        is mounted from its repository (`POST …/blobs/uploads/?mount=…&from=…`; a registry
        that cannot mount opens an upload instead, and the blob is sent), and the bytes sent
        are counted (`sent`)."""
        container = self.get_container(container)
        if self.blob_exists(layer, container):
            answer = requests.Response()
            answer.status_code = 200
            return answer
        digest, source = layer["digest"], self.mounts.get(layer["digest"])
        if source is not None and source != self.ref.repository:
            url = (
                f"{self.prefix}://{self.ref.endpoint}/v2/{self.ref.repository}/blobs/uploads/"
                f"?mount={digest}&from={source}"
            )
            mounted = self.do_request(url, "POST")
            if mounted.status_code == 201:
                return mounted
        self.sent += int(layer["size"])
        sent: requests.Response = (
            self.chunked_upload(blob, container, layer, chunk_size=chunk_size)
            if do_chunked
            else self.put_upload(blob, container, layer)
        )
        return sent

    def _check_200_response(self, response: requests.Response) -> None:
        """oras' check of each upload: ours, one line (oras' own answer to a blob the registry
        has already is a bare 200 with no request)."""
        if response.status_code >= 300:
            check_answer(response, self.ref, request_of(response))

    def check_login(self) -> None:
        """Ask /v2/ who we must be, before any push: a registry that wants a login and has
        none is refused in one line, with no blob sent."""
        check_answer(self.do_request(f"{self.prefix}://{self.ref.endpoint}/v2/"), self.ref, "/v2/")

    def manifest_url(self, reference: str) -> str:
        return f"{self.prefix}://{self.ref.endpoint}/v2/{self.ref.repository}/manifests/{reference}"

    def remote_digest(self, reference: str) -> str:
        response = self.do_request(
            self.manifest_url(reference), "HEAD", headers={"Accept": f"{INDEX}, {MANIFEST}"}
        )
        check_answer(response, self.ref, "HEAD of the manifest")
        return str(response.headers.get("Docker-Content-Digest", ""))
