"""cosign, as tests/setup installs it (v2.6.5 and v3.1.3, in the tools' cache directory), run
against the test bed's registries: logged in through a docker config of its own and trusting
the test bed's CA."""

from __future__ import annotations

import base64
import json
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

VERSIONS = ("v2.6.5", "v3.1.3")
PASSWORD = "correct horse battery staple"
TOOLS = Path(
    os.environ.get("PIPELINE_TOOLS_DIR")
    or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "pipeline-tools"
)


def binary(version: str) -> Path:
    path = TOOLS / f"cosign-{version}" / "cosign"
    assert path.is_file(), f"no cosign {version} at {path}: run tests/setup"
    return path


@dataclass(frozen=True)
class Cosign:
    """One cosign version, with the logins of `config` (a DOCKER_CONFIG directory)."""

    version: str
    config: Path
    ca: str | None = None

    def __call__(
        self, *args: str, env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        extra = {"DOCKER_CONFIG": str(self.config), **(env or {})}
        if self.ca:
            extra["SSL_CERT_FILE"] = self.ca
        return subprocess.run(
            [str(binary(self.version)), *args],
            capture_output=True,
            text=True,
            env={**os.environ, **extra},
            timeout=120,
            check=False,
        )

    def verify(self, image: str, public: Path, *extra: str) -> subprocess.CompletedProcess[str]:
        return self("verify", "--key", str(public), "--insecure-ignore-tlog=true", *extra, image)

    def verify_attestation(
        self, image: str, public: Path, kind: str, *extra: str
    ) -> subprocess.CompletedProcess[str]:
        return self(
            "verify-attestation", "--key", str(public), "--insecure-ignore-tlog=true",
            "--type", kind, *extra, image,
        )  # fmt: skip


def docker_config(directory: Path, logins: dict[str, tuple[str, str]]) -> Path:
    """A DOCKER_CONFIG directory holding `logins` (registry → user, password)."""
    directory.mkdir(parents=True, exist_ok=True)
    auths = {
        registry: {"auth": base64.b64encode(f"{user}:{password}".encode()).decode()}
        for registry, (user, password) in logins.items()
    }
    (directory / "config.json").write_text(json.dumps({"auths": auths}))
    return directory


def generate_key_pair(directory: Path, password: str) -> tuple[Path, Path]:
    """`cosign generate-key-pair` in `directory`: the encrypted key and the public key."""
    directory.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(
        [str(binary(VERSIONS[0])), "generate-key-pair"],
        cwd=directory,
        capture_output=True,
        text=True,
        env={**os.environ, "COSIGN_PASSWORD": password},
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return directory / "cosign.key", directory / "cosign.pub"


def pem_key(key: object, path: Path, password: str | None = None) -> Path:
    """`key` (a cryptography private key) written to `path` as PKCS#8 PEM, encrypted with
    `password` if one is given."""
    encryption: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(password.encode())
        if password
        else serialization.NoEncryption()
    )
    assert isinstance(
        key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey
    )
    path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption)
    )
    return path
