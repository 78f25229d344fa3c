"""The errors the pipeline raises on purpose; the CLI turns each into one line and an exit code.

PipelineError          something failed while building, exporting or pushing (exit 1)
├── BuildFailed        a command in a container failed: the compiler's or go test's output
├── RegistryError      a registry refused, was unreachable, or lacks an image
├── EngineUnavailable  no Dagger engine could be reached
│   └── EngineGone     the engine, or the `dagger run` holding the
│                      session, went away during the run
└── OutputError        a result file could not be written
UsageError             an option's value is wrong, found before any engine work (exit 2)
├── SettingsError      (pipeline.refs) a flag's value is malformed
└── SourceError        (pipeline.recipe.source) --source/--package is not a Go main package
"""

from __future__ import annotations

# The one way a registry password reaches the pipeline (never a flag: flags show in `ps`).
PASSWORD_ENV = "PIPELINE_REGISTRY_PASSWORD"
NETRC_ENV = "PIPELINE_NETRC"  # a .netrc's content (--netrc gives a path instead)


class PipelineError(Exception):
    """A failure the user can act on; str() is the one line to show."""


class BuildFailed(PipelineError):
    """A command in a container exited non-zero; `detail` holds what it printed."""

    def __init__(self, message: str, detail: str = "") -> None:
        super().__init__(message)
        self.detail = detail


class RegistryError(PipelineError):
    """A registry refused a pull or a push, or could not be reached."""


def auth_failed(registry: str) -> RegistryError:
    """The registry refused our credentials (or wanted some)."""
    return RegistryError(
        f"authentication failed for {registry}: check --registry-username and {PASSWORD_ENV}"
    )


class EngineUnavailable(PipelineError):
    """No Dagger engine answered."""


class EngineGone(EngineUnavailable):
    """The engine stopped answering during the run."""


class OutputError(PipelineError):
    """A result file (tarball, JSON) could not be written where asked."""


class UsageError(ValueError):
    """A flag's value is wrong; the message says which and what to do."""


_UNREACHABLE = (
    "connection refused",
    "no route to host",
    "no such host",
    "name or service not known",
    "i/o timeout",
    "timed out",
    "network is unreachable",
    "connection reset",
    "tls handshake timeout",
)


def unreachable_reason(message: str) -> str | None:
    """Why a network peer could not be reached, if `message` (Go's or Python's) says so."""
    lowered = message.lower()
    return next((reason for reason in _UNREACHABLE if reason in lowered), None)
