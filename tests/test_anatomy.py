"""pipeline.image.anatomy: base and own bytes split by diff_ids; toolchain, source and shell
found."""

from __future__ import annotations

from pipeline.image.anatomy import dissect
from pipeline.image.oci import Layer, Manifest


def manifest(layers: list[tuple[str, int, dict[str, int]]], created_by: list[str]) -> Manifest:
    return Manifest(
        digest="sha256:m",
        platform="linux/amd64",
        config_digest="sha256:c",
        config={
            "rootfs": {"diff_ids": [f"sha256:diff-{d}" for d, _, _ in layers]},
            "history": [{"created_by": c} for c in created_by],
        },
        layers=tuple(
            Layer(f"sha256:{d:0<64}", "application/vnd.oci.image.layer.v1.tar+gzip", s // 2, s, f)
            for d, s, f in layers
        ),
    )


def diff_ids(layers: list[tuple[str, int, dict[str, int]]]) -> list[str]:
    """What the base's config lists: as manifest() names them."""
    return [f"sha256:diff-{d}" for d, _, _ in layers]


GOLANG = [
    ("a", 600_000_000, {"usr/local/go/bin/go": 1, "usr/local/go/src/fmt/print.go": 1, "bin/sh": 0})
]
BUSYBOX = [("b", 2_000_000, {"bin/busybox": 2_000_000, "bin/sh": 0})]


def test_naive_holds_toolchain_source_and_shell() -> None:
    image = manifest(
        [
            *GOLANG,
            ("s", 10_000, {"myapp/main.go": 100}),
            ("x", 30_000_000, {"myapp/helloworld": 2}),
        ],
        ["import", "Directory.withDirectory", "mount / from exec go build -o helloworld ."],
    )
    got = dissect(image, diff_ids(GOLANG), "/myapp/helloworld")
    assert (got.base_layers, got.base_bytes, got.own_bytes) == (1, 600_000_000, 30_010_000)
    assert (got.toolchain, got.source, got.shell) == (True, True, True)
    assert got.binary_bytes == 2
    assert got.biggest_layer_bytes == 600_000_000
    assert got.biggest_layer.endswith("(import)")


def test_toolchain_sources_are_not_our_source() -> None:
    got = dissect(manifest(GOLANG, ["import"]), (), "/myapp/x")
    assert got.toolchain
    assert not got.source


def test_slim_image_on_busybox_and_on_scratch() -> None:
    binary = ("c", 1_600_000, {"myapp/helloworld": 1_585_314})
    on_busybox = dissect(
        manifest([*BUSYBOX, binary], ["import", "withfile /myapp/helloworld"]),
        diff_ids(BUSYBOX),
        "/myapp/helloworld",
    )
    assert (on_busybox.base_bytes, on_busybox.own_bytes) == (2_000_000, 1_600_000)
    assert (on_busybox.toolchain, on_busybox.source, on_busybox.shell) == (False, False, True)
    on_scratch = dissect(manifest([binary], ["withfile"]), (), "/myapp/helloworld")
    assert (on_scratch.base_layers, on_scratch.base_bytes, on_scratch.shell) == (0, 0, False)
    assert on_scratch.binary_bytes == 1_585_314


def test_a_base_layer_is_described_by_the_bases_own_history() -> None:
    """The base's history entry, as its config has it: an imported layer has only a comment."""
    image = manifest([*BUSYBOX, ("c", 1_000, {"myapp/helloworld": 900})], ["", "withfile"])
    image.config["history"][0] = {"comment": "Imported from -"}
    got = dissect(image, diff_ids(BUSYBOX), "/myapp/helloworld")
    assert got.biggest_layer == f"{'b':0<12} (Imported from -)"
