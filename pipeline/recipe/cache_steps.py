"""The Go caches' steps, described: the helper image with the build's cache volumes, the
probe that tells warm volumes from empty ones, the unpack of a restored cache into them,
the pack of what a build used, and `go list` of the modules its packages come from. Lazy:
each returns a container or a directory; pipeline.flows.gocache runs them.

The steps run in the small helper image (--helper-image), never the Go image, except `go
list`, which asks nothing of the Go image but `go`: POSIX sh, and only the options busybox
and GNU share."""

from __future__ import annotations

import functools
import re
import uuid

import dagger
from dagger import dag

from pipeline.recipe.source import SourceTree
from pipeline.recipe.stages import toolchain, with_go_caches
from pipeline.settings import Settings

BUILD_TAR = "go-build.tar"  # the tarballs as the scripts read and write them
MOD_TAR = "go-mod.tar"
MOUNT = "/pipeline-cache"
MODULE_LIST = "/pipeline-modules.txt"  # the save's list of module cache files
# The modules that provide the packages built (go list -deps), as module@version.
MODULE_FORMAT = "{{with .Module}}{{if not .Main}}{{.Path}}@{{.Version}}{{end}}{{end}}"
RESTORED_AGE = 7200  # seconds: older than the hour after which Go touches an entry it uses
_PROBE = 'if [ -e "$GOCACHE/README" ]; then echo engine; else echo none; fi'

# Restore into empty volumes only (a volume the engine has filled is newer than any artifact);
# a tarball that does not unpack leaves the volumes empty again. README, written last, is what
# Go writes in a cache directory it starts: a volume without it is empty or half-written. The
# tarballs come uncompressed: the host inflated them while the engine pulled the images.
# Runs in the helper image: POSIX sh and options busybox and GNU share, nothing of the Go image.
_RESTORE = r"""
set -u
if [ -e "$GOCACHE/README" ]; then echo engine; exit 0; fi
ok=1
tar -xof /pipeline-cache/go-build.tar -C "$GOCACHE" || ok=0
if [ -e /pipeline-cache/go-mod.tar ]; then
  mkdir -p "$GOMODCACHE"
  tar -xof /pipeline-cache/go-mod.tar -C "$GOMODCACHE" || ok=0
fi
if [ "$ok" = 0 ]; then
  rm -rf "$GOCACHE"/* "$GOMODCACHE/cache/download"
  echo corrupt
  exit 0
fi
find "$GOCACHE" -type f -exec touch -c -d "@$(( $(date +%s) - $1 ))" {} +
echo 'This directory holds cached build artifacts from the Go build system.' > "$GOCACHE/README"
echo restored
"""

# The build cache entries used since $1 (seconds since the epoch), and with $2 (a list of the
# module cache files the build's packages come from, made on the host from `go list`) those
# files and the module cache's .mod/.info files, each set as tarballs in MOUNT (one per xargs
# batch: busybox's tar reads no file list). The host merges them into one canonical tarball
# (sorted names, no times, no owners: the same cache pushes the same blob) and compresses it.
_SAVE = r"""
set -eu
pack() { xargs -r sh -c 'tar -cf "$0.$$.tar" "$@"' "/pipeline-cache/$1"; }
mkdir -p /pipeline-cache
touch -d "@$1" /tmp/pipeline-since
cd "$GOCACHE"
find . -type f -newer /tmp/pipeline-since ! -name README ! -name trim.txt | pack go-build
if [ -n "${2:-}" ]; then
  cd "$GOMODCACHE"
  {
    find cache/download -type f \( -name '*.mod' -o -name '*.info' \)
    while read -r file; do
      if [ -f "$file" ]; then echo "$file"; fi
    done < "$2"
  } | pack go-mod
fi
"""


def caches(helper: str, settings: Settings) -> dagger.Container:
    """The helper image with the build's cache volumes, in a container no cache answers."""
    return with_go_caches(dag.container().from_(helper), settings).with_env_variable(
        "PIPELINE_CACHE_RUN", uuid.uuid4().hex
    )


def probe(helper: str, settings: Settings) -> dagger.Container:
    """Prints "engine" where the volumes are warm (this engine filled them), else "none"."""
    return caches(helper, settings).with_exec(["sh", "-c", _PROBE])


def unpack(helper: str, settings: Settings, files: dict[str, dagger.File]) -> dagger.Container:
    """The tarballs `files` (by name: BUILD_TAR, MOD_TAR) unpacked into the volumes if they
    are still empty. Prints "restored", "engine" (warm meanwhile) or "corrupt" (nothing
    kept)."""
    container = caches(helper, settings)
    for name, file in files.items():
        container = container.with_mounted_file(f"{MOUNT}/{name}", file)
    return container.with_exec(["sh", "-c", _RESTORE, "sh", str(RESTORED_AGE)])


def pack(helper: str, settings: Settings, since: int, listed: list[str] | None) -> dagger.Directory:
    """The cache entries used since `since` (seconds since the epoch) and, with `listed` (the
    module cache files the build's packages come from), those and the module cache's
    .mod/.info files: tarballs BUILD_TAR.*.tar and MOD_TAR.*.tar, one per batch."""
    packer = caches(helper, settings)
    script = ["sh", "-c", _SAVE, "sh", str(since)]
    if listed is not None:
        packer = packer.with_new_file(MODULE_LIST, "".join(f"{f}\n" for f in listed))
        script.append(MODULE_LIST)
    return packer.with_exec(script).directory(MOUNT)


def module_list(settings: Settings, tree: SourceTree) -> tuple[dagger.Container, list[str]]:
    """`go list` of the modules the build's packages come from (module@version lines, on
    stdout), in the Go image, and the command as shown."""
    command = ["go", "list", "-deps", *(["-test"] if settings.test else []), "-f", MODULE_FORMAT]
    listing = toolchain(settings, tree).with_exec([*command, "./..."])
    return listing, [*command[:-2], "./..."]


def module_files(listed: str) -> list[str]:
    """The module cache files (relative to GOMODCACHE) of `go list`'s module@version lines:
    each module's zip and ziphash, its path and version escaped as the go command escapes
    them (an upper-case letter is ! and the letter in lower case)."""
    escape = functools.partial(re.sub, r"[A-Z]", lambda m: "!" + m.group().lower())
    files = []
    for module in sorted({line.strip() for line in listed.splitlines() if "@" in line}):
        path, _, version = module.rpartition("@")
        if path and version:
            for suffix in ("zip", "ziphash"):
                files.append(f"cache/download/{escape(path)}/@v/{escape(version)}.{suffix}")
    return files
