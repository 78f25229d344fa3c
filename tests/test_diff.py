"""pipeline.image.diff, without the engine: an image without its base's layers is named layer
by layer, and `differences` names the file and the field that differ. (Moved here from
tests/test_reproducible.py with the module's split.)"""

from __future__ import annotations

from pathlib import Path

from pipeline.image.diff import base_mismatches, differences
from pipeline.image.normalise import normalise
from tests.layouts import (
    GOLDEN_EPOCH,
    PLAIN_LAYER,
    exported,
    golden_tars,
    noise,
    registry_base,
    retarred,
    write_layout,
)


def test_an_image_without_its_bases_layers_is_named(tmp_path: Path) -> None:
    """base_mismatches (verify's check): an image normalised without the base's layers has a
    first layer that is not the base manifest's, and says how."""
    base_tar, app = golden_tars()
    base = registry_base(tmp_path, base_tar)
    source = write_layout(
        tmp_path / "export.tar", [(PLAIN_LAYER, retarred(base_tar)), (PLAIN_LAYER, app)],
        [retarred(base_tar), app],
    )  # fmt: skip
    out = tmp_path / "image.tar"
    normalise(source, out, epoch=GOLDEN_EPOCH, ref_name="g:1")  # no bases: the engine's tar
    (found,) = base_mismatches(out, {"linux/amd64": base})
    assert found.startswith("linux/amd64: layer 0 (sha256:")
    assert found.endswith("its digest, size, mediaType, diff_id differ")


def test_differences_name_the_file_and_the_field(tmp_path: Path) -> None:
    a, b, c = (tmp_path / f"{name}.tar" for name in "abc")
    normalise(exported(tmp_path), a, epoch=GOLDEN_EPOCH, ref_name="g:1")
    normalise(exported(tmp_path, ("tar", "gzip -9")), b, epoch=GOLDEN_EPOCH, ref_name="g:1")
    assert differences(a, b) == []
    tars = golden_tars(b"\x7fELF" + noise(150_001))
    changed = write_layout(tmp_path / "changed.tar", [(PLAIN_LAYER, t) for t in tars], tars)
    normalise(changed, c, epoch=GOLDEN_EPOCH + 1, ref_name="g:1")
    found = differences(a, c)
    created = "config field created: '2023-11-14T22:13:20Z' vs '2023-11-14T22:13:21Z'"
    assert f"linux/amd64: {created}" in found
    (layer,) = [f for f in found if f.startswith("linux/amd64: layer 1 (")]
    assert layer.endswith("): myapp/helloworld (size, content)")
    assert not any(f.startswith("linux/amd64: layer 0") for f in found)
