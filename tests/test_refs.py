"""pipeline.refs: platforms and image references are parsed once, as docker resolves them.
(These tests moved here from tests/test_settings.py with the grammar.)"""

from __future__ import annotations

import pytest

from pipeline.refs import (
    Platform,
    SettingsError,
    is_host,
    is_name_component,
    parse_image_ref,
    parse_platform,
)


@pytest.mark.parametrize(
    ("text", "want", "env"),
    [
        ("linux/amd64", Platform("linux", "amd64"), {"GOOS": "linux", "GOARCH": "amd64"}),
        ("linux/arm64", Platform("linux", "arm64"), {"GOOS": "linux", "GOARCH": "arm64"}),
        (
            "linux/arm/v7",
            Platform("linux", "arm", "v7"),
            {"GOOS": "linux", "GOARCH": "arm", "GOARM": "7"},
        ),
    ],
)
def test_parse_platform(text: str, want: Platform, env: dict[str, str]) -> None:
    got = parse_platform(text)
    assert got == want, f"parse_platform({text!r}) = {got}, want {want}"
    assert str(got) == text
    assert got.go_env() == env


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("linux/", "malformed"),
        ("amd64", "malformed"),
        ("/amd64", "malformed"),
        ("linux/amd64/v9/x", "malformed"),
        ("windows/amd64", "images run on linux"),
        ("linux/sparc", "does not cross-compile"),
        ("linux/arm", "say which ARM"),
        ("linux/arm64/v7", "no variant"),
    ],
)
def test_parse_platform_rejects(text: str, message: str) -> None:
    with pytest.raises(SettingsError, match=message):
        parse_platform(text)


@pytest.mark.parametrize(
    ("text", "registry", "path", "tag", "digest"),
    [
        ("golang:1.26", "docker.io", "golang", "1.26", ""),
        ("busybox", "docker.io", "busybox", "", ""),
        ("library/alpine:3.22", "docker.io", "library/alpine", "3.22", ""),
        ("127.0.0.1:5000/hello:v1", "127.0.0.1:5000", "hello", "v1", ""),
        ("localhost/team/app", "localhost", "team/app", "", ""),
        (
            "ghcr.example.com/a/b:t@sha256:" + "a" * 64,
            "ghcr.example.com",
            "a/b",
            "t",
            "sha256:" + "a" * 64,
        ),
    ],
)
def test_parse_image_ref(text: str, registry: str, path: str, tag: str, digest: str) -> None:
    ref = parse_image_ref(text, option="--go-image")
    assert (ref.registry, ref.path, ref.tag, ref.digest) == (registry, path, tag, digest)
    assert str(ref) == text


@pytest.mark.parametrize(
    "text",
    [
        "",
        "Golang:1.26",
        "golang:",
        "golang::1",
        "a b",
        "golang@sha256:abc",
        "-x",
        " golang",
        "a//b",
    ],
)
def test_parse_image_ref_rejects(text: str) -> None:
    with pytest.raises(
        SettingsError, match=r"--runtime-image .* (not an image reference|lowercase)"
    ):
        parse_image_ref(text, option="--runtime-image")


@pytest.mark.parametrize(
    ("text", "endpoint", "repository", "canonical"),
    [
        # As docker and containerd resolve them: Docker Hub's API is registry-1.docker.io
        # (docker.io/v2/ redirects to a web page), official images live under library/.
        ("alpine", "registry-1.docker.io", "library/alpine", "docker.io/library/alpine"),
        ("alpine:3.22", "registry-1.docker.io", "library/alpine", "docker.io/library/alpine"),
        ("user/app:tag", "registry-1.docker.io", "user/app", "docker.io/user/app"),
        ("docker.io/app", "registry-1.docker.io", "library/app", "docker.io/library/app"),
        ("docker.io/library/app:1", "registry-1.docker.io", "library/app", "docker.io/library/app"),
        ("index.docker.io/user/app", "registry-1.docker.io", "user/app", "docker.io/user/app"),
        (
            "registry-1.docker.io/app",
            "registry-1.docker.io",
            "library/app",
            "docker.io/library/app",
        ),
        ("ghcr.io/team/app:1", "ghcr.io", "team/app", "ghcr.io/team/app"),
        ("127.0.0.1:5000/app", "127.0.0.1:5000", "app", "127.0.0.1:5000/app"),
        ("localhost/app", "localhost", "app", "localhost/app"),
    ],
)
def test_docker_hub_names_resolve_as_docker_resolves_them(
    text: str, endpoint: str, repository: str, canonical: str
) -> None:
    ref = parse_image_ref(text, option="--publish")
    assert (ref.endpoint, ref.repository, ref.qualified) == (endpoint, repository, canonical)


def test_names_and_hosts() -> None:
    assert is_name_component("hello-world_2")
    assert not is_name_component("Hello")
    assert not is_name_component("a/b")
    assert is_host("mirror.example.com:5000")
    assert is_host("127.0.0.1:5000")
    assert not is_host("http://mirror")
