"""pipeline.provenance: SOURCE_DATE_EPOCH from the environment, else git, else 0; labels."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from pipeline.errors import UsageError
from pipeline.provenance import labels, read_provenance, rfc3339


def git(repo: Path, *args: str, env: dict[str, str] | None = None) -> str:
    done = subprocess.run(
        ["git", "-C", str(repo), *args], capture_output=True, text=True, check=True, env=env
    )
    return done.stdout.strip()


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    git(tmp_path, "init", "-q")
    (tmp_path / "main.go").write_text("package main\n")
    git(tmp_path, "add", ".")
    env = {
        "GIT_AUTHOR_DATE": "@1700000000 +0000",
        "GIT_COMMITTER_DATE": "@1700000000 +0000",
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@example.com",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@example.com",
        "PATH": "/usr/bin:/bin",
    }
    git(tmp_path, "commit", "-qm", "one", env=env)
    git(tmp_path, "tag", "v1.2.3")
    git(tmp_path, "remote", "add", "origin", "https://user:token@git.example.com/team/app.git")
    return tmp_path


def test_epoch_from_the_last_commit(repo: Path) -> None:
    got = read_provenance(repo, None)
    assert got.epoch == 1700000000
    assert got.revision == git(repo, "rev-parse", "HEAD")
    assert got.version == "v1.2.3"
    assert got.source_url == "https://git.example.com/team/app.git"  # no credentials
    assert got.created == "2023-11-14T22:13:20Z"


def test_environment_wins(repo: Path) -> None:
    assert read_provenance(repo, "1600000000").epoch == 1600000000


def test_no_git_means_zero(tmp_path: Path) -> None:
    got = read_provenance(tmp_path, None)
    assert (got.epoch, got.revision, got.source_url, got.version) == (0, None, None, None)
    assert rfc3339(0) == "1970-01-01T00:00:00Z"


def test_bad_epoch(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="SOURCE_DATE_EPOCH='yesterday'"):
        read_provenance(tmp_path, "yesterday")


def test_labels(repo: Path) -> None:
    got = labels(read_provenance(repo, None), "helloworld")
    assert got == {
        "org.opencontainers.image.title": "helloworld",
        "org.opencontainers.image.created": "2023-11-14T22:13:20Z",
        "org.opencontainers.image.source": "https://git.example.com/team/app.git",
        "org.opencontainers.image.revision": git(repo, "rev-parse", "HEAD"),
        "org.opencontainers.image.version": "v1.2.3",
    }
