"""What a registry's work is given: the login for that registry (credentials, the CA that
signs its certificate) and a Deadline, shared with the thread that does the work, that stops
it for real when it is over its time or interrupted. Imports neither oras nor requests, so
that a flow may hold these before a registry is talked to."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from pipeline.errors import RegistryError
from pipeline.refs import ImageRef
from pipeline.settings import Secret, Settings

CONNECT_TIMEOUT = 10.0  # seconds, each request (never past the deadline's end)
READ_TIMEOUT = 60.0


@dataclass(frozen=True)
class Login:
    """How to reach a registry: credentials and the CA that signs its certificate."""

    username: str | None
    password: Secret | None
    ca: Path | None

    @classmethod
    def of(cls, settings: Settings, ref: ImageRef | None = None) -> Login:
        """The run's --registry-username, its password and --registry-ca, for `ref` (default
        --publish): the credentials go to the registry they are for, never to another."""
        if ref is not None and ref.registry != settings.login_registry:
            return cls(None, None, settings.registry_ca)
        return cls(settings.registry_username, settings.registry_password, settings.registry_ca)


@dataclass
class Deadline:
    """The end of a push (`end`, time.monotonic()) and a flag that stops it, shared with the
    thread that pushes: checked before every request, and no request waits past the end."""

    end: float
    stop: threading.Event = field(default_factory=threading.Event)

    @classmethod
    def of(cls, seconds: float) -> Deadline:
        return cls(time.monotonic() + seconds)

    def left(self, registry: str) -> float:
        """Seconds left; RegistryError if none are, or the push was stopped."""
        if self.stop.is_set():
            raise RegistryError(f"push to {registry} stopped")
        left = self.end - time.monotonic()
        if left <= 0:
            raise RegistryError(f"registry {registry} did not finish the push in time")
        return left

    def timeout(self, registry: str) -> tuple[float, float]:
        left = self.left(registry)
        return min(CONNECT_TIMEOUT, left), min(READ_TIMEOUT, left)
