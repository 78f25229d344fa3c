"""pipeline.image.oci: sizes, digests and platforms read from real OCI tarballs (the test bed's
busybox, copied out of its registry by skopeo), checked against skopeo and gzip."""

from __future__ import annotations

import gzip
import hashlib
import json
import tarfile
from pathlib import Path

import pytest

from pipeline.image.oci import OCIError, digest_of, file_digest, is_index, plain, read_image
from tests.conftest import Testbed


@pytest.fixture(scope="module")
def busybox(testbed: Testbed, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("oci") / "busybox.tar"
    copied = testbed.skopeo(
        "copy",
        "--src-tls-verify=false",
        "--format",
        "oci",
        f"docker://{testbed.registry}/library/busybox:1.35",
        f"oci-archive:{path}",
    )
    assert copied.returncode == 0, copied.stderr
    return path


def test_digest_and_sizes_agree_with_skopeo(busybox: Path, testbed: Testbed) -> None:
    info = read_image(busybox)
    raw = testbed.skopeo("inspect", "--raw", f"oci-archive:{busybox}").stdout
    manifest = json.loads(raw)
    assert info.digest == "sha256:" + hashlib.sha256(raw.encode()).hexdigest()
    assert info.compressed == sum(layer["size"] for layer in manifest["layers"])
    (only,) = info.manifests
    assert only.platform == "linux/amd64"
    assert [layer.digest for layer in only.layers] == [d["digest"] for d in manifest["layers"]]


def test_uncompressed_is_the_layer_tar_length(busybox: Path) -> None:
    info = read_image(busybox)
    want = 0
    with tarfile.open(busybox) as tar:
        for layer in info.manifests[0].layers:
            blob = tar.extractfile("blobs/" + layer.digest.replace(":", "/"))
            assert blob is not None
            want += len(gzip.decompress(blob.read()))
    assert info.uncompressed == want
    assert 1_900_000 < info.uncompressed < 2_300_000  # busybox-static is about 2 MB


@pytest.mark.parametrize("content", [b"", b"not a tarball", None])
def test_not_an_image(tmp_path: Path, content: bytes | None) -> None:
    path = tmp_path / "x.tar"
    if content is None:
        with tarfile.open(path, "w"):
            pass  # a valid tar with no index.json
    else:
        path.write_bytes(content)
    with pytest.raises(OCIError, match=str(path)):
        read_image(path)


def test_an_index_is_known_by_its_media_type_or_its_manifests() -> None:
    oci_index = {"mediaType": "application/vnd.oci.image.index.v1+json", "manifests": []}
    docker_list = {"mediaType": "application/vnd.docker.distribution.manifest.list.v2+json"}
    manifest = {"mediaType": "application/vnd.oci.image.manifest.v1+json", "layers": []}
    assert is_index(oci_index)
    assert is_index(docker_list)
    assert not is_index(manifest)
    # No media type of its own (allowed in OCI): the descriptor's, else its manifests say so.
    assert is_index({"manifests": []})
    assert is_index({"schemaVersion": 2}, {"mediaType": oci_index["mediaType"]})
    assert not is_index({"layers": []}, {"mediaType": manifest["mediaType"]})


def test_a_blob_is_plain_tar_whether_gzipped_or_not_and_files_hash_as_bytes(
    tmp_path: Path,
) -> None:
    tar = b"a tar stream, as far as this is concerned" * 100
    assert plain(gzip.compress(tar)) == tar
    assert plain(tar) == tar
    path = tmp_path / "blob"
    path.write_bytes(tar * 50_000)  # several reads of a MiB
    assert file_digest(path) == digest_of(path.read_bytes())
