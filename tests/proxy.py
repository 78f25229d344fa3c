"""A proxy in front of one of the test bed's plain registries that answers some requests itself
(a 429, a 403, a 500) and relays the rest: a registry that misbehaves, for real, as a test
says."""

from __future__ import annotations

import contextlib
import http.server
import threading
from collections.abc import Callable, Iterator
from typing import Any

import requests

Fault = Callable[[str, str], tuple[int, dict[str, str]] | None]


@contextlib.contextmanager
def faulty_proxy(upstream: str, fault: Fault) -> Iterator[tuple[str, list[str]]]:
    """An HTTP proxy in front of the plain registry `upstream`: `fault(method, path)` may
    answer a request itself (status, headers); every other request goes to the registry.
    Its address, and the requests it answered itself."""
    answered: list[str] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def relay(self) -> None:
            injected = fault(self.command, self.path)
            if injected is not None:
                status, headers = injected
                answered.append(f"{self.command} {self.path} {status}")
                self.send_response(status)
                for key, value in {**headers, "Content-Length": "0"}.items():
                    self.send_header(key, value)
                self.end_headers()
                return
            length = int(self.headers.get("Content-Length", "0"))
            body = self.rfile.read(length) if length else None
            headers = {k: v for k, v in self.headers.items() if k.lower() != "content-length"}
            upstream_answer = requests.request(
                self.command,
                f"http://{upstream}{self.path}",
                data=body,
                headers=headers,
                allow_redirects=False,
                timeout=30,
            )
            content = upstream_answer.content
            self.send_response(upstream_answer.status_code)
            for key, value in upstream_answer.headers.items():
                if key.lower() not in ("content-length", "transfer-encoding", "connection"):
                    self.send_header(key, value)
            self.send_header("Content-Length", str(len(content)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(content)

        do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = relay

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{server.server_address[1]}", answered
    finally:
        server.shutdown()
        server.server_close()
