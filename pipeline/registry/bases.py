"""The base images' own layers, as their registries serve them.

An image made on a base holds the base's layers byte for byte, as docker and ko keep them:
the blobs, digests, sizes and media types the base's manifest lists, and the diff_ids its
config lists. The engine cannot be asked for them: an engine restarted without a prune keeps
a base's unpacked snapshot but not its blobs, and exports those layers re-tarred from the
snapshot (other diff_ids, another image digest). So the base's manifest, config and layer
blobs are read from its registry, by the digest the base was pinned to, and kept in the
user's cache directory under their digests (`blobs/sha256/<hex>`, used only if the bytes hash
to the name): a digest names the same bytes forever, so each is fetched once per machine and
a run whose bases are all kept makes no request at all.

Where the engine pulls a registry through a mirror (its engine.json), `--registry-mirror
REGISTRY=MIRROR` sends these reads there too.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipeline.errors import PipelineError, RegistryError
from pipeline.image.oci import BaseLayers, digest_of, is_index, platform_of, same_platform
from pipeline.outputs import kept_bytes
from pipeline.refs import ImageRef, Platform, parse_image_ref
from pipeline.registry.access import Deadline, Login
from pipeline.settings import Settings

if TYPE_CHECKING:
    from pipeline.registry.transport import Client

KEEP_BYTES = 4 << 30  # the store's bound: the newest blobs are kept up to this many bytes
_ACCEPT = ", ".join(
    (
        "application/vnd.oci.image.index.v1+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.docker.distribution.manifest.v2+json",
    )
)


def store(cache: Path) -> Path:
    """Where blobs are kept under the user's cache directory `cache`."""
    return cache / "blobs" / "sha256"


def source(pinned: str, settings: Settings) -> ImageRef:
    """Where the base `pinned` (REF@sha256:…) is read from: its registry, or the mirror
    --registry-mirror gives for it."""
    ref = parse_image_ref(pinned, option="base image")
    if not ref.digest:
        raise PipelineError(f"base image {pinned} is not pinned by digest")
    mirror = dict(settings.registry_mirrors).get("docker.io" if ref.docker_hub else ref.registry)
    if mirror is None:
        return ref
    return parse_image_ref(f"{mirror}/{ref.repository}@{ref.digest}", option="--registry-mirror")


class _NotKept(Exception):
    """A blob is not in the store, and the reader may not ask the registry."""


@dataclass
class _Reader:
    """Reads one repository's blobs and manifests by digest: from the store, else from the
    registry (the client made at the first miss); without a deadline, from the store only."""

    ref: ImageRef
    settings: Settings
    deadline: Deadline | None
    kept: Path
    client: Client | None = None

    def _client(self) -> Client:
        if self.deadline is None:
            raise _NotKept
        if self.client is None:
            from pipeline.registry import transport  # requests and oras: only a miss needs them

            login = Login.of(self.settings, self.ref)
            self.client = transport.Client(self.ref, login, self.deadline, actions="pull")
        return self.client

    def kept_path(self, digest: str) -> Path | None:
        """The kept file of `digest`, if its bytes still hash to it."""
        path = self.kept / digest.removeprefix("sha256:")
        # Cut short or changed: removed, and fetched again.
        return path if kept_bytes(path, digest.removeprefix("sha256:")) is not None else None

    def _keep(self, digest: str, write: Any) -> Path:
        """Write a blob with `write(path)` under a temporary name, then give it its own."""
        self.kept.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".", suffix=".tmp", dir=self.kept)
        os.close(fd)
        try:
            write(Path(tmp))
            path = self.kept / digest.removeprefix("sha256:")
            os.replace(tmp, path)
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
        return path

    def manifest(self, digest: str) -> dict[str, Any]:
        """The manifest or index `digest` (checked against it)."""
        path = self.kept_path(digest)
        if path is None:
            from pipeline.registry.answers import check_answer, one_line_errors

            client = self._client()
            with one_line_errors(self.ref):
                answer = client.do_request(
                    client.manifest_url(digest), "GET", headers={"Accept": _ACCEPT}
                )
            check_answer(answer, self.ref, f"reading the manifest {digest[:19]}")
            if digest_of(answer.content) != digest:
                raise RegistryError(
                    f"{self.ref.registry}: the manifest {digest[:19]}… of {self.ref.repository}"
                    " does not match its digest"
                )
            path = self._keep(digest, lambda p: p.write_bytes(answer.content))
        loaded: dict[str, Any] = json.loads(path.read_bytes())
        return loaded

    def blob(self, digest: str, size: int) -> Path:
        """The blob `digest` (of `size` bytes), as a kept file."""
        path = self.kept_path(digest)
        if path is None:
            from pipeline.registry.answers import one_line_errors
            from pipeline.registry.remote import download_blob

            client = self._client()
            with one_line_errors(self.ref):
                path = self._keep(digest, lambda p: download_blob(client, digest, size, p))
        return path


def _platform_manifest(
    reader: _Reader, index: dict[str, Any], pinned: str, platform: Platform
) -> dict[str, Any]:
    """The manifest of `platform` listed in the base's index."""
    entries = [m for m in index["manifests"] if isinstance(m, dict)]
    for entry in entries:
        if same_platform(platform_of(entry.get("platform") or {}), str(platform)):
            return reader.manifest(str(entry["digest"]))
    listed = ", ".join(sorted(platform_of(e.get("platform") or {}) for e in entries))
    raise PipelineError(
        f"base image {pinned} has no {platform} image (it has {listed or 'none'}): use a "
        "multi-platform base or scratch"
    )


def layers_of(
    pinned: str, platform: Platform, settings: Settings, deadline: Deadline | None, kept: Path
) -> BaseLayers | None:
    """The layers of the base `pinned` (REF@sha256:…) for `platform`, each blob a kept file:
    what is not kept is read from the registry within `deadline`; without one, None if
    anything is not kept (no request is made, and requests is not even imported)."""
    try:
        return _layers_of(
            _Reader(source(pinned, settings), settings, deadline, kept), pinned, platform
        )
    except _NotKept:
        return None


def _layers_of(reader: _Reader, pinned: str, platform: Platform) -> BaseLayers:
    try:
        top = reader.manifest(reader.ref.digest)
        several = is_index(top)
        manifest = _platform_manifest(reader, top, pinned, platform) if several else top
        described = manifest["config"]
        config = json.loads(reader.blob(described["digest"], int(described["size"])).read_bytes())
        layers = tuple(dict(layer) for layer in manifest["layers"])
        diff_ids = tuple(str(d) for d in config["rootfs"]["diff_ids"])
        history = tuple(dict(h) for h in config.get("history", []) if isinstance(h, dict))
    except (KeyError, TypeError, AttributeError, json.JSONDecodeError) as err:
        raise RegistryError(
            f"base image {pinned}: its manifest or config is not an image's ({err!r})"
        ) from None
    if not several and not same_platform(platform_of(config), str(platform)):
        raise PipelineError(
            f"base image {pinned} is {platform_of(config)} only, not {platform}: use a "
            "multi-platform base or scratch"
        )
    if len(diff_ids) != len(layers):
        raise RegistryError(
            f"base image {pinned}: its config lists {len(diff_ids)} diff_ids for "
            f"{len(layers)} layers"
        )
    blobs = {str(la["digest"]): reader.blob(str(la["digest"]), int(la["size"])) for la in layers}
    return BaseLayers(pinned, str(platform), layers, diff_ids, history, blobs)


def fetch(
    wanted: Iterable[tuple[str, Platform]],
    settings: Settings,
    deadline: Deadline | None,
    cache: Path,
) -> dict[tuple[str, str], BaseLayers]:
    """The layers of each (base, platform) in `wanted`, by (base, platform as text); those not
    kept are read from the registry within `deadline` (without one, they are left out). The
    store is then trimmed to KEEP_BYTES, the newest kept."""
    kept = store(cache)
    found = {}
    for ref, platform in dict.fromkeys(wanted):
        layers = layers_of(ref, platform, settings, deadline, kept)
        if layers is not None:
            found[ref, str(platform)] = layers
    if deadline is not None:
        trim(kept)
    return found


def trim(kept: Path, keep: int = KEEP_BYTES) -> None:
    """Remove the oldest blobs past `keep` bytes in all."""
    with contextlib.suppress(OSError):
        files = sorted(
            (p for p in kept.iterdir() if not p.name.startswith(".")),
            key=lambda p: p.stat().st_mtime,
            reverse=True,
        )
        total = 0
        for path in files:
            total += path.stat().st_size
            if total > keep:
                path.unlink(missing_ok=True)
