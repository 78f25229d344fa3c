#!/usr/bin/python3
"""The test bed's token service: what a registry with `auth: token` sends its clients to, as
Docker Hub, Harbor and GitLab do (Docker's token specification, distribution's
docs/spec/auth/token.md and oauth.md).

One realm, /token, in both forms:
- GET  /token?service=S&scope=A&scope=B, HTTP basic auth or none:
  {"token", "access_token", "expires_in", "issued_at"} (+ "refresh_token" with offline_token=true);
- POST /token, form grant_type=password (username, password) or grant_type=refresh_token
  (refresh_token), with service, scope (space-separated) and client_id:
  {"access_token", "token_type", "scope", "expires_in", "issued_at"} (+ "refresh_token" with
  access_type=offline).

The one user (--user, password in --password-file) gets exactly the `pull` and `push` it asks
for on any repository; nothing else (no `*`, no `delete`, no `registry:catalog`). No credentials
at all: a token that grants nothing, so the registry answers insufficient_scope. Wrong
credentials: 401.

Tokens are RS256 JWTs signed with `openssl dgst` (Python's standard library only). Their header
carries the signing certificate (`x5c`), which distribution 2.8 checks against its
rootcertbundle, and the libtrust key ID of its key (`kid`), which it looks up among the keys of
that bundle's certificates when a token has no `x5c`.

Each request is one JSON line on stdout: method, user, service, scopes asked, access granted,
status. Never a password or a token.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import hashlib
import hmac
import json
import secrets
import socket
import ssl
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

MAX_BODY = 64 * 1024
GRANTABLE = ("pull", "push")


class Refused(Exception):
    """An answer other than 200: status, OAuth error code, description."""

    def __init__(self, status: int, error: str, description: str) -> None:
        super().__init__(description)
        self.status = status
        self.error = error
        self.description = description


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def pem_blocks(text: str, kind: str) -> list[bytes]:
    """The DER bytes of each `-----BEGIN <kind>-----` block in a PEM text."""
    blocks: list[bytes] = []
    begin, end = f"-----BEGIN {kind}-----", f"-----END {kind}-----"
    rest = text
    while begin in rest:
        body, _, rest = rest.split(begin, 1)[1].partition(end)
        blocks.append(base64.b64decode("".join(body.split())))
    return blocks


def libtrust_key_id(spki_der: bytes) -> str:
    """docker/libtrust's key ID: SHA-256 of the DER SubjectPublicKeyInfo, its first 240 bits in
    base32, in groups of four joined by colons (what distribution 2.8 reads in `kid`)."""
    encoded = base64.b32encode(hashlib.sha256(spki_der).digest()[:30]).decode().rstrip("=")
    return ":".join(encoded[i : i + 4] for i in range(0, len(encoded), 4))


def parse_scope(scope: str) -> tuple[str, str, list[str]]:
    """`type:name:action,action`; the name may hold a colon (a registry's host:port)."""
    kind, sep, rest = scope.partition(":")
    name, sep2, actions = rest.rpartition(":")
    if not (sep and sep2 and kind and name):
        raise Refused(400, "invalid_scope", f"malformed scope {scope!r}")
    return kind, name, [a for a in actions.split(",") if a]


class Issuer:
    def __init__(self, args: argparse.Namespace) -> None:
        self.issuer: str = args.issuer
        self.service: str = args.service
        self.user: str = args.user
        self.ttl: int = args.ttl
        self.signing_key: str = args.signing_key
        with open(args.password_file, "rb") as f:
            self.password = f.read().strip()
        with open(args.signing_cert) as f:
            chain = pem_blocks(f.read(), "CERTIFICATE")
        if not chain:
            raise SystemExit(f"tokenservice: no certificate in {args.signing_cert}")
        public_pem = subprocess.run(
            ["openssl", "x509", "-noout", "-pubkey", "-in", args.signing_cert],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        self.header = {
            "typ": "JWT",
            "alg": "RS256",
            "kid": libtrust_key_id(pem_blocks(public_pem, "PUBLIC KEY")[0]),
            "x5c": [base64.b64encode(der).decode() for der in chain],
        }
        self.refresh_tokens: dict[str, str] = {}
        self.lock = threading.Lock()

    # --- who is asking

    def check_password(self, user: str, password: str) -> str:
        good_user = hmac.compare_digest(user.encode(), self.user.encode())
        good_password = hmac.compare_digest(password.encode(), self.password)
        if not (good_user and good_password):
            raise Refused(401, "invalid_grant", "incorrect username or password")
        return user

    def basic_user(self, authorization: str | None) -> str | None:
        """The user of an `Authorization: Basic` header, checked; None without the header."""
        if authorization is None:
            return None
        scheme, _, value = authorization.partition(" ")
        if scheme.lower() != "basic":
            raise Refused(401, "invalid_client", f"unsupported authorization scheme {scheme!r}")
        try:
            user, sep, password = (
                base64.b64decode(value.strip(), validate=True).decode().partition(":")
            )
        except (binascii.Error, UnicodeDecodeError) as err:
            raise Refused(401, "invalid_client", "malformed basic credentials") from err
        if not sep:
            raise Refused(401, "invalid_client", "malformed basic credentials")
        return self.check_password(user, password)

    def refresh(self, refresh_token: str) -> str:
        with self.lock:
            user = self.refresh_tokens.get(refresh_token)
        if user is None:
            raise Refused(400, "invalid_grant", "unknown refresh token")
        return user

    def new_refresh_token(self, user: str) -> str:
        token = secrets.token_urlsafe(32)
        with self.lock:
            self.refresh_tokens[token] = user
        return token

    # --- what they get

    def check_service(self, service: str | None) -> None:
        if service is not None and service != self.service:
            raise Refused(400, "invalid_request", f"unknown service {service!r}")

    def grant(self, user: str | None, scopes: list[str]) -> list[dict[str, Any]]:
        """The access claim: for the user, the pull and push asked for on each repository,
        merged per repository; for anyone else, nothing."""
        asked: dict[tuple[str, str], set[str]] = {}
        for scope in scopes:
            kind, name, actions = parse_scope(scope)
            granted = asked.setdefault((kind, name), set())
            if user is not None and kind == "repository":
                granted.update(a for a in actions if a in GRANTABLE)
        return [
            {"type": kind, "name": name, "actions": sorted(actions)}
            for (kind, name), actions in asked.items()
            if actions
        ]

    def sign(self, signing_input: bytes) -> bytes:
        return subprocess.run(
            ["openssl", "dgst", "-sha256", "-sign", self.signing_key],
            input=signing_input,
            check=True,
            capture_output=True,
        ).stdout

    def token(self, user: str | None, access: list[dict[str, Any]]) -> tuple[str, int]:
        now = int(time.time())
        claims = {
            "iss": self.issuer,
            "sub": user or "",
            "aud": self.service,  # distribution 2.8 reads a string here, not a list
            "exp": now + self.ttl,
            "nbf": now - 5,
            "iat": now,
            "jti": secrets.token_hex(16),
            "access": access,
        }
        signing_input = ".".join(
            b64url(json.dumps(part, separators=(",", ":")).encode())
            for part in (self.header, claims)
        )
        return f"{signing_input}.{b64url(self.sign(signing_input.encode()))}", now


def scopes_of(values: list[str]) -> list[str]:
    """Scopes as repeated parameters (the GET form) or space-separated (the OAuth form)."""
    return [scope for value in values for scope in value.split()]


def scope_string(access: list[dict[str, Any]]) -> str:
    return " ".join(f"{a['type']}:{a['name']}:{','.join(a['actions'])}" for a in access)


def iso(seconds: int) -> str:
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def log(entry: dict[str, Any]) -> None:
    """One JSON line on stdout (the test bed's log), with the time first."""
    sys.stdout.write(json.dumps({"time": iso(int(time.time())), **entry}) + "\n")
    sys.stdout.flush()


class Handler(BaseHTTPRequestHandler):
    server_version = "pipeline-testbed-tokenservice/1"
    issuer: Issuer  # set on the class by main()

    def log_message(self, format: str, *args: Any) -> None:
        pass  # one JSON line per request instead, from record()

    def record(self, entry: dict[str, Any]) -> None:
        log({"client": self.client_address[0], "method": self.command, **entry})

    def reply(
        self, status: int, body: dict[str, Any], headers: dict[str, str] | None = None
    ) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "no-store")
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        self.answer(url.path, parse_qs(url.query, keep_blank_values=True), oauth=False)

    def do_POST(self) -> None:
        url = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY:
            self.reply(413, {"error": "invalid_request", "error_description": "body too large"})
            return
        body = self.rfile.read(length).decode("utf-8", "replace")
        self.answer(url.path, parse_qs(body, keep_blank_values=True), oauth=True)

    def answer(self, path: str, form: dict[str, list[str]], *, oauth: bool) -> None:
        entry: dict[str, Any] = {"form": "oauth" if oauth else "get"}
        try:
            body = self.issue(path, form, entry, oauth=oauth)
        except Refused as refused:
            entry.update(status=refused.status, error=refused.description)
            self.record(entry)
            headers = {}
            if refused.status == 401:
                headers["WWW-Authenticate"] = 'Basic realm="pipeline-testbed token service"'
            self.reply(
                refused.status,
                {
                    "error": refused.error,
                    "error_description": refused.description,
                    "details": refused.description,  # Docker Hub's key for the same line
                },
                headers,
            )
            return
        self.record(entry)
        self.reply(200, body)

    def issue(
        self, path: str, form: dict[str, list[str]], entry: dict[str, Any], *, oauth: bool
    ) -> dict[str, Any]:
        """The answer's body, or Refused; what was asked and granted goes into `entry`."""
        issuer = self.issuer
        scopes = scopes_of(form.get("scope", []))
        entry.update(service=form.get("service", [None])[0], scopes=scopes)
        if path != "/token":
            raise Refused(404, "not_found", f"no such endpoint {path!r}; the realm is /token")
        issuer.check_service(entry["service"])
        user, refresh = self.oauth_user(form, entry) if oauth else self.get_user(form, entry)
        access = issuer.grant(user, scopes)
        token, now = issuer.token(user, access)
        entry.update(status=200, granted=access, refresh_token_issued=refresh is not None)
        body: dict[str, Any] = {
            "access_token": token,
            "expires_in": issuer.ttl,
            "issued_at": iso(now),
        }
        if oauth:
            body.update(token_type="Bearer", scope=scope_string(access))
        else:
            body["token"] = token
        if refresh is not None:
            body["refresh_token"] = refresh
        return body

    def get_user(
        self, form: dict[str, list[str]], entry: dict[str, Any]
    ) -> tuple[str | None, str | None]:
        """The user of a GET (basic auth; None without), and a refresh token if
        offline_token=true asked for one."""
        user = self.issuer.basic_user(self.headers.get("Authorization"))
        entry["user"] = user
        account = form.get("account", [None])[0]
        if user is not None and account not in (None, user):
            raise Refused(400, "invalid_request", f"account {account!r} is not {user!r}")
        offline = form.get("offline_token", [""])[0] == "true"
        return user, self.issuer.new_refresh_token(user) if user and offline else None

    def oauth_user(
        self, form: dict[str, list[str]], entry: dict[str, Any]
    ) -> tuple[str, str | None]:
        """The user of an OAuth2 POST (password or refresh_token grant), and a refresh token
        if access_type=offline asked for one."""
        issuer = self.issuer

        def field(name: str) -> str:
            values = form.get(name)
            if not values or not values[0]:
                raise Refused(400, "invalid_request", f"missing {name}")
            return values[0]

        grant_type = field("grant_type")
        entry["grant_type"] = grant_type
        field("client_id")
        if grant_type == "password":
            user = issuer.check_password(field("username"), field("password"))
            entry["user"] = user
            offline = form.get("access_type", [""])[0] == "offline"
            return user, issuer.new_refresh_token(user) if offline else None
        if grant_type == "refresh_token":
            user = issuer.refresh(field("refresh_token"))
            entry["user"] = user
            return user, None
        raise Refused(400, "unsupported_grant_type", f"unsupported grant_type {grant_type!r}")


class Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], context: ssl.SSLContext) -> None:
        super().__init__(address, Handler)
        self.context = context

    def get_request(self) -> tuple[socket.socket, Any]:
        sock, address = super().get_request()
        # The handshake happens on first read, in the request's own thread.
        return self.context.wrap_socket(
            sock, server_side=True, do_handshake_on_connect=False
        ), address

    def handle_error(self, request: Any, client_address: Any) -> None:
        log({"client": client_address[0], "error": repr(sys.exc_info()[1])})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--listen", required=True, help="HOST:PORT")
    parser.add_argument("--tls-cert", required=True)
    parser.add_argument("--tls-key", required=True)
    parser.add_argument("--signing-key", required=True, help="PEM RSA private key")
    parser.add_argument("--signing-cert", required=True, help="its certificate (chain), PEM")
    parser.add_argument("--issuer", required=True)
    parser.add_argument("--service", required=True)
    parser.add_argument("--user", required=True)
    parser.add_argument("--password-file", required=True)
    parser.add_argument("--ttl", type=int, default=300, help="token lifetime, seconds")
    args = parser.parse_args()

    Handler.issuer = Issuer(args)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(args.tls_cert, args.tls_key)
    host, _, port = args.listen.rpartition(":")
    try:
        server = Server((host, int(port)), context)
    except OSError as err:
        log({"listening": args.listen, "error": str(err)})
        raise SystemExit(1) from err
    log({"listening": args.listen, "kid": Handler.issuer.header["kid"]})
    server.serve_forever()


if __name__ == "__main__":
    main()
