"""The grammar of what a flag names: a platform (os/arch[/variant]) and an image reference
([registry/]repository[:tag][@digest], Docker Hub's defaults), parsed and checked. No I/O."""

from __future__ import annotations

import re
from dataclasses import dataclass

from pipeline.errors import UsageError


class SettingsError(UsageError):
    """An option's value is wrong; the message says which and what to do (exit 2)."""


@dataclass(frozen=True)
class Platform:
    """A target platform, as OCI writes it (linux/arm/v7), with the Go environment for it."""

    os: str
    arch: str
    variant: str = ""

    def __str__(self) -> str:
        return "/".join(p for p in (self.os, self.arch, self.variant) if p)

    def go_env(self) -> dict[str, str]:
        """GOOS/GOARCH (and GOARM) that cross-compile for this platform."""
        env = {"GOOS": self.os, "GOARCH": self.arch}
        if self.arch == "arm" and self.variant:
            env["GOARM"] = self.variant.removeprefix("v")
        return env


# Linux targets Go cross-compiles to and container images exist for, with their variants.
_GO_LINUX_ARCHES: dict[str, tuple[str, ...]] = {
    "amd64": ("", "v1", "v2", "v3", "v4"),
    "arm64": ("", "v8"),
    "arm": ("v6", "v7", "v5"),
    "386": ("",),
    "ppc64le": ("",),
    "s390x": ("",),
    "riscv64": ("",),
    "mips64le": ("",),
    "loong64": ("",),
}


def parse_platform(text: str) -> Platform:
    """`linux/arm64`, `linux/arm/v7` → Platform; anything else → SettingsError."""
    parts = text.strip().split("/")
    if len(parts) not in (2, 3) or not all(parts):
        raise SettingsError(
            f"--platform {text!r} is malformed: write OS/ARCH[/VARIANT], e.g. linux/amd64"
        )
    os_, arch = parts[0], parts[1]
    variant = parts[2] if len(parts) == 3 else ""
    if os_ != "linux":
        raise SettingsError(f"--platform {text!r}: images run on linux; use linux/{arch}")
    if arch not in _GO_LINUX_ARCHES:
        known = ", ".join(f"linux/{a}" for a in _GO_LINUX_ARCHES)
        raise SettingsError(
            f"--platform {text!r}: Go does not cross-compile to {arch!r} here; use one of {known}"
        )
    if variant not in _GO_LINUX_ARCHES[arch]:
        if arch == "arm" and not variant:
            raise SettingsError(f"--platform {text!r}: say which ARM, e.g. linux/arm/v7")
        raise SettingsError(f"--platform {text!r}: {arch} has no variant {variant!r}")
    return Platform(os_, arch, variant)


# The grammar of github.com/distribution/reference, without IPv6 hosts.
_ALNUM = r"[a-z0-9]+"
_SEPARATOR = r"(?:[._]|__|-+)"
_PATH_COMPONENT = rf"{_ALNUM}(?:{_SEPARATOR}{_ALNUM})*"
_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN = rf"{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*(?::[0-9]+)?"
_TAG = r"[\w][\w.-]{0,127}"
_DIGEST = r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}"
_REFERENCE = re.compile(
    rf"^(?:(?P<domain>{_DOMAIN})/)?(?P<path>{_PATH_COMPONENT}(?:/{_PATH_COMPONENT})*)"
    rf"(?::(?P<tag>{_TAG}))?(?:@(?P<digest>{_DIGEST}))?$"
)
_NAME = re.compile(rf"^{_PATH_COMPONENT}$")


@dataclass(frozen=True)
class ImageRef:
    """An image reference split as `docker pull` reads it."""

    registry: str  # "docker.io" when the reference names none
    path: str
    tag: str
    digest: str
    text: str

    def __str__(self) -> str:
        return self.text

    @property
    def docker_hub(self) -> bool:
        return self.registry in DOCKER_HUB

    @property
    def endpoint(self) -> str:
        """The host that serves the registry API: Docker Hub's is registry-1.docker.io (its
        name, docker.io, answers /v2/ with a redirect to a web page)."""
        return DOCKER_HUB_API if self.docker_hub else self.registry

    @property
    def repository(self) -> str:
        """The repository as the API names it: Docker Hub's official images live under
        library/ (`alpine` is library/alpine), as docker and containerd resolve them."""
        return f"library/{self.path}" if self.docker_hub and "/" not in self.path else self.path

    @property
    def push_tag(self) -> str:
        """The tag a push goes to: the reference's, else `latest`, as docker pushes it."""
        return self.tag or "latest"

    @property
    def qualified(self) -> str:
        """registry/repository, in full: docker.io/library/alpine for `alpine`."""
        return f"{'docker.io' if self.docker_hub else self.registry}/{self.repository}"


# Docker's own names for Docker Hub, and the host of its API.
DOCKER_HUB = ("docker.io", "index.docker.io", "registry-1.docker.io")
DOCKER_HUB_API = "registry-1.docker.io"


def parse_image_ref(text: str, *, option: str) -> ImageRef:
    """Check `text` against the reference grammar; SettingsError naming `option` if it fails."""
    match = _REFERENCE.match(text.strip())
    if text != text.strip() or match is None or len(text) > 255:
        raise SettingsError(
            f"{option} {text!r} is not an image reference: write "
            "[REGISTRY/]REPOSITORY[:TAG][@DIGEST], e.g. 127.0.0.1:5000/helloworld:latest"
        )
    domain, path = match["domain"], match["path"]
    # As in docker: a first component is a registry only if it looks like a host.
    if domain and not ("." in domain or ":" in domain or domain == "localhost"):
        if domain != domain.lower():
            raise SettingsError(f"{option} {text!r}: repository names must be lowercase")
        path, domain = f"{domain}/{path}", None
    return ImageRef(
        registry=domain or "docker.io",
        path=path,
        tag=match["tag"] or "",
        digest=match["digest"] or "",
        text=text,
    )


_HOST = re.compile(rf"^{_DOMAIN}$")


def is_name_component(text: str) -> bool:
    """Whether `text` is one lowercase repository path component (`helloworld`, `my-app`)."""
    return bool(_NAME.match(text))


def is_host(text: str) -> bool:
    """Whether `text` is a registry host, with an optional port (`mirror.example.com:5000`)."""
    return bool(_HOST.match(text))
