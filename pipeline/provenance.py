"""Where an image comes from, read from the source's git repository: the SOURCE_DATE_EPOCH its
timestamps are set to, and the OCI labels that name the source, revision and version."""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from pipeline.errors import UsageError


@dataclass(frozen=True)
class Provenance:
    """The epoch every timestamp in the image is set to, and what git says of the source."""

    epoch: int
    revision: str | None = None
    source_url: str | None = None
    version: str | None = None
    ref: str | None = None  # the branch HEAD is on (refs/heads/main), if any

    @property
    def created(self) -> str:
        """The epoch as RFC 3339, as OCI configs and labels write times."""
        return rfc3339(self.epoch)


def rfc3339(epoch: int) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _git(source: Path, *args: str) -> str | None:
    try:
        done = subprocess.run(
            ["git", "-C", str(source), *args], capture_output=True, text=True, check=False
        )
    except FileNotFoundError:
        return None  # no git on this machine: no git metadata
    return done.stdout.strip() or None if done.returncode == 0 else None


def _without_credentials(url: str) -> str:
    """https://user:token@host/repo → https://host/repo: labels are public."""
    return re.sub(r"^(\w[\w+.-]*://)[^/@]*@", r"\1", url)


def read_provenance(source: Path, source_date_epoch: str | None) -> Provenance:
    """SOURCE_DATE_EPOCH from the environment's value, else the last commit time of the
    source's git repository, else 0; the git revision, remote and version where there is one."""
    commit_time = _git(source, "log", "-1", "--format=%ct")
    if source_date_epoch is not None and source_date_epoch.strip():
        if not source_date_epoch.strip().isdigit():
            raise UsageError(
                f"SOURCE_DATE_EPOCH={source_date_epoch!r}: give whole seconds since 1970, "
                "e.g. 1700000000"
            )
        epoch = int(source_date_epoch)
    else:
        epoch = int(commit_time) if commit_time and commit_time.isdigit() else 0
    remote = _git(source, "config", "--get", "remote.origin.url")
    return Provenance(
        epoch=epoch,
        revision=_git(source, "rev-parse", "HEAD") if commit_time else None,
        source_url=_without_credentials(remote) if remote else None,
        version=_git(source, "describe", "--tags", "--always") if commit_time else None,
        ref=_git(source, "symbolic-ref", "-q", "HEAD") if commit_time else None,
    )


def labels(provenance: Provenance, title: str) -> dict[str, str]:
    """The org.opencontainers.image.* labels: created is the epoch, never the wall clock."""
    found = {
        "org.opencontainers.image.title": title,
        "org.opencontainers.image.created": provenance.created,
        "org.opencontainers.image.source": provenance.source_url,
        "org.opencontainers.image.revision": provenance.revision,
        "org.opencontainers.image.version": provenance.version,
    }
    return {key: value for key, value in found.items() if value}
