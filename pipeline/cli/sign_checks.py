"""The checks of the signing flags: --sign-key must be a key that can sign (read, opened with
its password, EC P-256) and have something to sign (--publish), each one line before any
engine work. A key is opened once per run, however many images sign with it."""

from __future__ import annotations

import functools
from pathlib import Path

from pipeline.errors import UsageError
from pipeline.image.signing import Signer
from pipeline.refs import ImageRef


@functools.cache
def _opened(path: Path, password: str | None) -> Signer:
    from pipeline.image.keys import load_key  # cryptography: only when a key is given

    return load_key(path, password)  # scrypt takes half a second: once per run


def sign_key(path: Path | None, password: str | None, publish: ImageRef | None) -> Signer | None:
    """The key that signs what --publish pushes, if --sign-key names one."""
    if path is None:
        return None
    if publish is None:
        raise UsageError(
            f"--sign-key {path} signs what --publish pushes: give --publish too (--provenance "
            "PATH writes the provenance of a local build)"
        )
    return _opened(path.resolve(), password)
