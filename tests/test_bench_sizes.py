"""bench/speed/sizes.py: the uncompressed size of an image that `docker save` wrote, counted from
the layer tars its manifest names (and no others in the tarball)."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

from bench.speed.sizes import docker_save_uncompressed


def test_docker_save_uncompressed_counts_the_layer_tars(tmp_path: Path) -> None:
    tarball = tmp_path / "saved.tar"
    layers = {"a/layer.tar": b"x" * 3072, "b/layer.tar": b"y" * 1536}
    with tarfile.open(tarball, "w") as tar:
        files = {
            "manifest.json": json.dumps([{"Layers": list(layers)}]).encode(),
            **layers,
            "c/layer.tar": b"z" * 512,  # in the tarball, not in the image
        }
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    assert docker_save_uncompressed(tarball) == 3072 + 1536
