"""What the user says of the image beyond its binary (pipeline.settings.ImageConfig): CMD,
environment, ports, working directory, labels, annotations, and --files beside the binary.
Lazy, like every recipe: each function describes a container and returns it."""

from __future__ import annotations

import dagger
from dagger import dag

from pipeline.recipe.stages import reloads
from pipeline.settings import DATA_DIR, DATA_ENV, Settings


def with_files(image: dagger.Container, settings: Settings) -> dagger.Container:
    """--files copied to DATA_DIR, each file's mode 0644 (0755 if executable) and, in a
    reproducible image, its time the epoch; DATA_ENV says where they are. Unchanged without."""
    files = settings.image.files
    if files is None:
        return image
    tree = dag.directory()
    data = DATA_DIR.lstrip("/")
    for path in sorted(p for p in files.rglob("*") if p.is_file()):
        mode = 0o755 if path.stat().st_mode & 0o111 else 0o644
        relative = f"{data}/{path.relative_to(files).as_posix()}"
        host = dag.host().file(str(path), no_cache=reloads(settings))
        tree = tree.with_file(relative, host, permissions=mode)
    provenance = settings.provenance
    if provenance is not None:  # every directory on the way too: the tree is rooted at /
        tree = tree.with_timestamps(provenance.epoch)
    return image.with_directory("/", tree).with_env_variable(DATA_ENV, DATA_DIR)


def configured(image: dagger.Container, settings: Settings) -> dagger.Container:
    """The image's CMD, environment, ports, working directory, labels and annotations as
    the settings give them (the user's labels after ours: theirs win)."""
    config = settings.image
    if config.cmd:
        image = image.with_default_args(list(config.cmd))
    for key, value in config.env:
        image = image.with_env_variable(key, value)
    for port in config.ports:
        number, _, protocol = port.partition("/")
        udp = protocol == "udp"
        image = image.with_exposed_port(
            int(number), protocol=dagger.NetworkProtocol.UDP if udp else dagger.NetworkProtocol.TCP
        )
    if config.workdir is not None:
        image = image.with_workdir(config.workdir)
    for key, value in config.labels:
        image = image.with_label(key, value)
    for key, value in config.annotations:
        image = image.with_annotation(key, value)
    return image
