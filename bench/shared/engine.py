"""The bench's own Dagger calls: ask the engine's version, empty the engine's cache (a cold
start for ours), pull the base images back in (cold means no build cache, not no base images),
and the probe that times the fixed costs of a session: connect, upload the source, resolve the
bases, close.

Run as `python -m bench.shared.engine version|prune|bases|probe ...` in a fresh interpreter, so that
the harness itself never imports dagger and the probe's timings start from nothing. Each
prints one JSON object on stdout.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import anyio

PRUNE_TRIES = 5


async def prune() -> dict[str, Any]:
    """Prune every releasable entry of the engine's local cache (build results, cache volumes,
    pulled layers). An entry that another session is using at that moment is not releasable:
    try again a few times, and say how many bytes were left."""
    import dagger
    from dagger import dag

    start = time.perf_counter()
    async with dagger.connection(dagger.Config(log_output=None)):
        cache = dag.engine().local_cache()
        tries, left = 0, -1
        while left != 0 and tries < PRUNE_TRIES:
            if tries:
                await anyio.sleep(2)
            tries += 1
            await cache.prune()
            left = await cache.entry_set().disk_space_bytes()
    return {"seconds": time.perf_counter() - start, "bytes_left": left, "tries": tries}


async def pull_bases(images: Sequence[str]) -> dict[str, Any]:
    """Pull and unpack the base images into the engine: an exec in each forces its layers in,
    and caches nothing that a build could reuse."""
    import dagger
    from dagger import dag

    start = time.perf_counter()
    async with (
        dagger.connection(dagger.Config(log_output=None)),
        anyio.create_task_group() as group,
    ):
        for image in images:
            group.start_soon(dag.container().from_(image).with_exec(["true"]).sync)
    return {"seconds": time.perf_counter() - start}


async def probe(source: Path, package: str, images: Sequence[str]) -> dict[str, Any]:
    """Time, in this fresh interpreter, as our pipeline does each: `import dagger` (with the
    session child started just before, pipeline.cli.launch), connecting (pipeline.engine.session's
    connected_to: our session child, the schema from the cache; up to the first answer),
    uploading the files of `source` that our pipeline uploads, resolving the base images to
    digests one after the other (as the pipeline pins them), and closing."""
    from pipeline.engine import provision
    from pipeline.engine.sdk import sdk_checks_off, sdk_lean
    from pipeline.recipe.source import inspect_source

    start = time.perf_counter()
    provision.start_early()  # as pipeline.cli.launch.in_engine: it connects during the import
    try:
        with sdk_checks_off(), sdk_lean(os.environ):
            from dagger import dag

            from pipeline.engine.address import from_env
            from pipeline.engine.session import connected_to

        imported = time.perf_counter()
        include = list(inspect_source(source, package).include)
        times: dict[str, float] = {"import_dagger": imported - start}
        async with connected_to(from_env()):
            engine_version = await dag.version()
            connected = time.perf_counter()
            times["connect"] = connected - imported
            # no_cache: read the host files now, as a one-shot run does, even if the engine
            # has seen this tree before.
            await dag.host().directory(str(source), include=include, no_cache=True).digest()
            uploaded = time.perf_counter()
            times["upload"] = uploaded - connected
            for image in images:
                await dag.container().from_(image).image_ref()
            done = time.perf_counter()
            times["resolve_bases"] = done - uploaded
        times["close"] = time.perf_counter() - done
    finally:
        provision.discard_early()
    return {"seconds": times, "engine_version": engine_version}


async def version() -> dict[str, Any]:
    """The engine's version, and how long a session took to open, ask and close."""
    import dagger
    from dagger import dag

    start = time.perf_counter()
    async with dagger.connection(dagger.Config(log_output=None)):
        engine_version = await dag.version()
    return {"engine_version": engine_version, "seconds": time.perf_counter() - start}


def main(argv: Sequence[str]) -> int:
    match list(argv):
        case ["version"]:
            result = anyio.run(version)
        case ["prune"]:
            result = anyio.run(prune)
        case ["bases", *images] if images:
            result = anyio.run(pull_bases, images)
        case ["probe", source, package, *images] if images:
            result = anyio.run(probe, Path(source), package, images)
        case _:
            print(
                "usage: python -m bench.shared.engine version | prune | bases IMAGE... "
                "| probe SOURCE PACKAGE IMAGE...",
                file=sys.stderr,
            )
            return 2
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
