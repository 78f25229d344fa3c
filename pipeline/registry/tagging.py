"""Further tags of a pushed image (--tag): its manifest, as pushed, PUT under each tag, so that
every tag names the same digest and no blob is sent again."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from pipeline.errors import RegistryError
from pipeline.image.oci import OCIError, read_blob
from pipeline.refs import ImageRef
from pipeline.registry.access import Deadline, Login
from pipeline.registry.answers import check_answer, one_line_errors
from pipeline.registry.transport import Client


def manifest_bytes(tarball: Path, digest: str) -> bytes:
    """The manifest (or index) `digest` of the OCI layout in `tarball`, byte for byte."""
    try:
        return read_blob(tarball, digest)
    except OCIError:
        raise RegistryError(
            f"{tarball}: its manifest {digest[:19]} is missing or changed"
        ) from None


def add_tags(
    manifest: bytes,
    ref: ImageRef,
    login: Login,
    deadline: Deadline,
    *,
    media_type: str,
    tags: Sequence[str],
    pushed: str,
) -> tuple[str, ...]:
    """Put `manifest` (already pushed as `pushed`, repository:tag) under each of `tags` in
    `ref`'s repository; return them. A refusal is one line naming the tag and the tags that
    point at the digest already."""
    done: list[str] = []
    with one_line_errors(ref):
        client = Client(ref, login, deadline)
        for tag in tags:
            answer = client.do_request(
                client.manifest_url(tag), "PUT", manifest, {"Content-Type": media_type}
            )
            try:
                check_answer(answer, ref, f"the tag {tag}")
            except RegistryError as err:
                already = ", ".join([pushed, *(f"{ref.repository}:{t}" for t in done)])
                raise RegistryError(f"{err}; tagged already: {already}") from None
            done.append(tag)
    return tuple(done)
