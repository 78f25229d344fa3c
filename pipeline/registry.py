"""Pushing the reproducible layout as it is: oras PUTs the manifest bytes unchanged, so the
registry's digest is the one computed here (Dagger's publish would re-stamp the config).
Then the SBOM, as an OCI 1.1 referrer of the image, also under the `sha256-<hex>` tag that
registries without the referrers API are asked for."""

from __future__ import annotations

import hashlib
import json
import socket
import ssl
import tarfile
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from ipaddress import ip_address
from pathlib import Path
from typing import Any

import oras.layout
import oras.provider
import requests

from pipeline.errors import RegistryError, auth_failed, unreachable_reason
from pipeline.reproducible import REF_NAME
from pipeline.settings import ImageRef, Secret, Settings

INDEX = "application/vnd.oci.image.index.v1+json"
MANIFEST = "application/vnd.oci.image.manifest.v1+json"
EMPTY = "application/vnd.oci.empty.v1+json"


@dataclass(frozen=True)
class Login:
    """How to reach a registry: credentials and the CA that signs its certificate."""

    username: str | None
    password: Secret | None
    ca: Path | None

    @classmethod
    def of(cls, settings: Settings) -> Login:
        """The run's --registry-username, its password and --registry-ca."""
        return cls(settings.registry_username, settings.registry_password, settings.registry_ca)


def _is_loopback(host: str) -> bool:
    name = host.rsplit(":", 1)[0] if not host.endswith("]") else host
    if name == "localhost":
        return True
    try:
        return ip_address(name.strip("[]")).is_loopback
    except ValueError:
        return False


def _speaks_tls(host: str) -> bool:
    name, _, port = host.rpartition(":")
    context = ssl.create_default_context()
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
    try:
        with (
            socket.create_connection((name or host, int(port or 443)), timeout=5) as raw,
            context.wrap_socket(raw),
        ):
            return True
    except (OSError, ssl.SSLError, ValueError):
        return False


def _auth_scheme(ref: ImageRef, scheme: str, verify: bool | str) -> str:
    """oras' auth backend for the registry's challenge: "basic" (htpasswd registries such as
    Debian's docker-registry) or "token" (bearer tokens, as most hosted registries)."""
    with _errors(ref):
        challenge = requests.get(f"{scheme}://{ref.registry}/v2/", verify=verify, timeout=30)
    header = challenge.headers.get("WWW-Authenticate", "")
    return "token" if header.lower().startswith("bearer") else "basic"


def _provider(ref: ImageRef, login: Login) -> oras.provider.Registry:
    # As docker does for registries on loopback: plain HTTP where they do not speak TLS.
    insecure = _is_loopback(ref.registry) and not _speaks_tls(ref.registry)
    verify: bool | str = str(login.ca) if login.ca else True
    provider = oras.provider.Registry(
        hostname=ref.registry,
        insecure=insecure,
        tls_verify=verify,
        auth_backend=_auth_scheme(ref, "http" if insecure else "https", verify),
    )
    if login.username and login.password:
        provider.auth.set_basic_auth(login.username, login.password.value)
    return provider


@contextmanager
def _errors(ref: ImageRef) -> Iterator[None]:
    """requests' and oras' failures as one line naming the registry."""
    try:
        yield
    except requests.exceptions.SSLError as err:
        raise RegistryError(
            f"registry {ref.registry}: TLS verification failed; give its CA with --registry-ca"
            f" ({type(err).__name__})"
        ) from None
    except requests.exceptions.ConnectionError as err:
        reason = unreachable_reason(str(err)) or "no connection"
        raise RegistryError(
            f"registry {ref.registry} unreachable ({reason}): is it up, is the address right?"
        ) from None
    except requests.exceptions.Timeout:
        raise RegistryError(f"registry {ref.registry} did not answer in time") from None
    except ValueError as err:
        if "401" in str(err) or "nauthorized" in str(err) or "UNAUTHORIZED" in str(err):
            raise auth_failed(ref.registry) from None
        raise RegistryError(f"push to {ref.registry} failed: {err}") from None


def _check(response: requests.Response, ref: ImageRef, what: str) -> None:
    if response.status_code == 401:
        raise auth_failed(ref.registry)
    if response.status_code >= 300:
        raise RegistryError(f"{what} at {ref.registry} failed: HTTP {response.status_code}")


def _manifest_url(provider: oras.provider.Registry, ref: ImageRef, reference: str) -> str:
    return f"{provider.prefix}://{ref.registry}/v2/{ref.path}/manifests/{reference}"


def _remote_digest(provider: oras.provider.Registry, ref: ImageRef, reference: str) -> str:
    response = provider.do_request(
        _manifest_url(provider, ref, reference), "HEAD", headers={"Accept": f"{INDEX}, {MANIFEST}"}
    )
    _check(response, ref, "HEAD of the manifest")
    return str(response.headers.get("Docker-Content-Digest", ""))


def push_image(tarball: Path, ref: ImageRef, login: Login, *, ref_name: str, digest: str) -> str:
    """Push the layout in `tarball` (its image named `ref_name` in index.json) to `ref`; fail
    unless the registry then reports `digest`. Return `registry/path:tag@digest`."""
    tag = ref.tag or "latest"
    provider = _provider(ref, login)
    with tempfile.TemporaryDirectory(prefix="pipeline-push-") as layout, _errors(ref):
        with tarfile.open(tarball) as tar:
            tar.extractall(layout, filter="data")
        response = oras.layout.Layout(layout).push_to_registry(
            provider, target=f"{ref.registry}/{ref.path}:{tag}", tag=ref_name
        )
        _check(response, ref, "push")
        remote = _remote_digest(provider, ref, tag)
    if remote != digest:
        raise RegistryError(
            f"{ref.registry} reports {remote or 'no digest'} for {ref.path}:{tag}, not the "
            f"pushed {digest}: the registry rewrote the manifest"
        )
    return f"{ref.registry}/{ref.path}:{tag}@{digest}"


def _blob(layout: Path, data: bytes) -> dict[str, Any]:
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    path = layout / "blobs" / "sha256" / digest.removeprefix("sha256:")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return {"digest": digest, "size": len(data)}


def _dump(document: object) -> bytes:
    return json.dumps(document, separators=(",", ":")).encode()


def push_sbom(
    sbom: bytes,
    ref: ImageRef,
    login: Login,
    *,
    subject: dict[str, Any],
    media_type: str,
    created: str,
) -> str:
    """Push `sbom` as a referrer of the image `subject` (its descriptor), and list it in the
    index under the fallback tag `sha256-<hex>`. Return that tag."""
    fallback = str(subject["digest"]).replace(":", "-")
    provider = _provider(ref, login)
    with tempfile.TemporaryDirectory(prefix="pipeline-sbom-") as directory, _errors(ref):
        layout = Path(directory)
        manifest = {
            "schemaVersion": 2,
            "mediaType": MANIFEST,
            "artifactType": media_type,
            "config": {"mediaType": EMPTY, **_blob(layout, b"{}")},
            "layers": [
                {
                    "mediaType": media_type,
                    **_blob(layout, sbom),
                    "annotations": {"org.opencontainers.image.title": "sbom.spdx.json"},
                }
            ],
            "subject": subject,
            "annotations": {"org.opencontainers.image.created": created},
        }
        entry = {
            "mediaType": MANIFEST,
            **_blob(layout, _dump(manifest)),
            "artifactType": media_type,
        }
        # The fallback tag's index lists every referrer: keep those already there.
        existing = provider.do_request(
            _manifest_url(provider, ref, fallback), "GET", headers={"Accept": INDEX}
        )
        listed = existing.json().get("manifests", []) if existing.status_code == 200 else []
        listed = [m for m in listed if m.get("digest") != entry["digest"]] + [entry]
        index = {"schemaVersion": 2, "mediaType": INDEX, "manifests": listed}
        top = {
            "mediaType": INDEX,
            **_blob(layout, _dump(index)),
            "annotations": {REF_NAME: fallback},
        }
        (layout / "oci-layout").write_bytes(_dump({"imageLayoutVersion": "1.0.0"}))
        (layout / "index.json").write_bytes(_dump({"schemaVersion": 2, "manifests": [top]}))
        response = oras.layout.Layout(str(layout)).push_to_registry(
            provider, target=f"{ref.registry}/{ref.path}:{fallback}", tag=fallback
        )
        _check(response, ref, "push of the SBOM")
    return fallback
