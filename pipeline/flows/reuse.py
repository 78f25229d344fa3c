"""--watch's next image, made from its last one: between two builds of a watched tag only the
source changes, so the new image is the last one with its binary's layer swapped
(pipeline.image.normalise.swap_last_layer), and the engine need not make it at all.

Kept owns the images kept for that, one per tag: a private link to (or copy of) the last
single-platform reproducible image, with the settings it was built from. Only `watch` makes
a Kept; a one-shot build has none, and keeps nothing."""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field, replace
from pathlib import Path

import anyio

from pipeline.image.canonical import file_layer
from pipeline.recipe.variants import Built
from pipeline.settings import Settings


@dataclass
class Kept:
    """Each tag's last single-platform reproducible image, with the settings it was built
    from, in `directory` (the session's temporary directory)."""

    directory: Path
    images: dict[str, tuple[Settings, Path]] = field(default_factory=dict)

    def previous(self, settings: Settings, platforms: int) -> Path | None:
        """The image to make this one from (pipeline.flows.tarball.export's `swap`): the last
        image of the same tag, built from the same settings and bases (only the source read
        again), of one platform; that image differs from this one in the binary's layer
        alone."""
        kept = self.images.get(settings.tag)
        if kept is None or platforms != 1:
            return None
        built_from, tarball = kept
        return tarball if built_from == replace(settings, reload_source=False) else None

    async def keep(self, settings: Settings, tarball: Path) -> None:
        """A private link to (or copy of) the image just made, for the next build of the tag
        to start from. A link stays what it is: the next image is written under a new name
        and renamed over the output (outputs.atomic_path)."""
        kept = self.directory / f"last-{settings.tag.replace(':', '-')}.tar"

        def link() -> None:
            kept.unlink(missing_ok=True)
            try:
                kept.hardlink_to(tarball)
            except OSError:  # another file system
                shutil.copyfile(tarball, kept)

        await anyio.to_thread.run_sync(link)
        self.images[settings.tag] = (replace(settings, reload_source=False), kept)


def foreseeable(settings: Settings, built: Built) -> bool:
    """Whether the image's layer that holds the binary can be foreseen from it: it holds
    nothing else and the image is made reproducible."""
    return settings.provenance is not None and built.binary_layer is not None


def foreseen(settings: Settings, built: Built, binary: bytes) -> bytes | None:
    """The tar of that layer (pipeline.image.canonical.file_layer); None where not
    foreseeable."""
    provenance, path = settings.provenance, built.binary_layer
    if provenance is None or path is None:
        return None
    return file_layer(path, binary, mtime=provenance.epoch)
