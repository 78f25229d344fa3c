"""Where the engine is, as `_EXPERIMENTAL_DAGGER_RUNNER_HOST` says, and whether it answers
there: the forms whose address can be probed from here (unix, tcp, tls). A TLS terminator
that closes the connection at once is one whose engine behind it is gone."""

from __future__ import annotations

import os
import socket
import ssl
from dataclasses import dataclass
from urllib.parse import parse_qs, urlsplit

from pipeline.errors import EngineUnavailable

RUNNER_HOST = "_EXPERIMENTAL_DAGGER_RUNNER_HOST"
PROBE_TIMEOUT = 2.0


@dataclass(frozen=True)
class Address:
    """The engine's address (`text`, as given), parsed."""

    text: str
    scheme: str
    path: str = ""  # unix
    host: str = ""  # tcp, tls
    port: int = 0
    tls: ssl.SSLContext | None = None

    @classmethod
    def parse(cls, text: str) -> Address | None:
        url = urlsplit(text)
        if url.scheme == "unix":
            return cls(text, "unix", path=url.path)
        if url.scheme in ("tcp", "tls") and url.hostname and url.port:
            context = None
            if url.scheme == "tls":
                query = {k: v[0] for k, v in parse_qs(url.query).items()}
                context = ssl.create_default_context(cafile=query.get("ca_path"))
                if "cert_path" in query:
                    context.load_cert_chain(query["cert_path"], query.get("key_path"))
            return cls(text, url.scheme, host=url.hostname, port=url.port, tls=context)
        return None  # image://, kube-pod://, ssh://, ...: not ours to probe

    def probe(self) -> str | None:
        """None if the engine's address answers as a live one does, else why not."""
        try:
            if self.scheme == "unix":
                with socket.socket(socket.AF_UNIX) as raw:
                    raw.settimeout(PROBE_TIMEOUT)
                    raw.connect(self.path)
                return None
            with socket.create_connection((self.host, self.port), PROBE_TIMEOUT) as raw:
                if self.tls is None:
                    return None
                with self.tls.wrap_socket(raw, server_hostname=self.host) as tls:
                    # A terminator whose engine is gone closes at once; a live one waits
                    # for our request.
                    tls.settimeout(0.3)
                    try:
                        closed = tls.recv(1) == b""
                    except TimeoutError:
                        closed = False
                    return "the TLS terminator closed the connection" if closed else None
        except ssl.SSLError as err:
            return _tls_refusal(str(err.reason or err))
        except OSError as err:
            return err.strerror or type(err).__name__


def _tls_refusal(reason: str) -> str:
    """What a failed TLS handshake with the engine's terminator means, and what to do."""
    if "CERTIFICATE_REQUIRED" in reason or "HANDSHAKE_FAILURE" in reason:
        hint = "it wants a client certificate: give cert_path and key_path in the runner host"
    elif "UNKNOWN_CA" in reason or "BAD_CERTIFICATE" in reason:
        hint = "it does not trust the CA of this client's certificate (cert_path)"
    elif "CERTIFICATE_VERIFY_FAILED" in reason:
        hint = "its certificate is not signed by ca_path"
    else:
        hint = "TLS refused"
    return f"{hint}; {reason}"


def from_env() -> Address | None:
    """The engine's address, if the environment names one we can probe."""
    text = os.environ.get(RUNNER_HOST, "")
    try:
        return Address.parse(text) if text else None
    except (OSError, ssl.SSLError, ValueError) as err:
        raise EngineUnavailable(f"{RUNNER_HOST}={text}: {err}") from None
