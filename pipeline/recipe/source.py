"""The Go source tree: checked before any engine work, and narrowed to what `go build` and
`go test` read, so that nothing else (.git, build/ outputs, a stray 200 MB file) is uploaded."""

from __future__ import annotations

import os
import re
import shlex
from dataclasses import dataclass
from pathlib import Path

from pipeline.errors import UsageError

# Files the go command reads when it builds and tests a package (go help buildmode, cgo, asm,
# .syso objects), plus module and workspace files, vendored modules and test data.
_BUILD_INPUTS = (
    "**/*.go",
    "**/go.mod",
    "**/go.sum",
    "**/go.work",
    "**/go.work.sum",
    "**/*.s",
    "**/*.S",
    "**/*.c",
    "**/*.h",
    "**/*.cc",
    "**/*.cpp",
    "**/*.cxx",
    "**/*.hh",
    "**/*.hpp",
    "**/*.hxx",
    "**/*.m",
    "**/*.f",
    "**/*.F",
    "**/*.for",
    "**/*.f90",
    "**/*.syso",
    "**/*.swig",
    "**/*.swigcxx",
    "vendor/**",
    "**/testdata/**",
)
_SKIPPED_DIRS = frozenset({".git", "build", "vendor", "testdata", "node_modules", ".venv"})
_PACKAGE_CLAUSE = re.compile(rb"^\s*package\s+(\w+)", re.MULTILINE)
_EMBED = re.compile(rb"^//go:embed\s+(.+)$", re.MULTILINE)
_INPUT_SUFFIXES = frozenset(p.removeprefix("**/*") for p in _BUILD_INPUTS if p.startswith("**/*"))
_INPUT_NAMES = frozenset({"go.mod", "go.sum", "go.work", "go.work.sum", "vendor", "testdata"})


def is_build_input(path: Path) -> bool:
    """Whether a change to `path` can change what `go build` or `go test` makes."""
    parts = set(path.parts)
    return (
        path.suffix in _INPUT_SUFFIXES
        or path.name in _INPUT_NAMES
        or "vendor" in parts
        or "testdata" in parts
    ) and not parts & {".git", "build"}


class SourceError(UsageError):
    """--source or --package does not name a Go main package (exit 2)."""


@dataclass(frozen=True)
class SourceTree:
    """A checked Go source tree and the patterns of the files a build reads from it."""

    root: Path
    package: str
    module: bool  # has go.mod; without one, the go command is told GO111MODULE=auto
    vendored: bool  # has vendor/modules.txt: build offline with -mod=vendor
    include: tuple[str, ...]


def _go_files(directory: Path) -> list[Path]:
    return sorted(p for p in directory.glob("*.go") if p.is_file())


def _package_name(go_file: Path) -> str | None:
    """The package clause of a Go file, skipping comments before it."""
    text = go_file.read_bytes()
    # Drop line and block comments so that a clause inside a comment is not taken.
    text = re.sub(rb"/\*.*?\*/", b"", text, flags=re.DOTALL)
    text = re.sub(rb"//[^\n]*", b"", text)
    match = _PACKAGE_CLAUSE.search(text)
    return match.group(1).decode() if match else None


def _embed_patterns(root: Path) -> list[str]:
    """Files named by //go:embed directives, as include patterns relative to root."""
    patterns: list[str] = []
    for go_file in _walk_go_files(root):
        for line in _EMBED.findall(go_file.read_bytes()):
            try:
                words = shlex.split(line.decode(errors="replace"))
            except ValueError:
                words = line.decode(errors="replace").split()
            rel_dir = go_file.parent.relative_to(root).as_posix()
            for word in words:
                word = word.removeprefix("all:")
                pattern = word if rel_dir == "." else f"{rel_dir}/{word}"
                patterns += [pattern, f"{pattern}/**"]
    return patterns


def _walk_go_files(root: Path) -> list[Path]:
    found: list[Path] = []
    stack = [root]
    while stack:
        directory = stack.pop()
        for entry in sorted(directory.iterdir()):
            if entry.is_symlink():
                continue
            if entry.is_dir():
                if entry.name not in _SKIPPED_DIRS and not entry.name.startswith("."):
                    stack.append(entry)
            elif entry.suffix == ".go":
                found.append(entry)
    return found


def _escaping_links(root: Path) -> list[str]:
    """Build inputs that are symlinks to somewhere outside the tree: the upload copies links
    as links, so the build would find nothing (or something else) there."""
    found: list[str] = []
    inside = root.resolve()
    for directory, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if d not in {".git", "build", "node_modules"}]
        for name in [*dirnames, *filenames]:
            path = Path(directory) / name
            if not path.is_symlink():
                continue
            if name in _INPUT_NAMES or Path(name).suffix in _INPUT_SUFFIXES:
                target = path.resolve()
                if not target.is_relative_to(inside):
                    found.append(f"{path.relative_to(root)} -> {os.readlink(path)}")
    return found


def inspect_source(root: Path, package: str) -> SourceTree:
    """Check that `root` holds a Go main package at `package`; say what to upload.

    Raises SourceError with one line naming the problem and what to do.
    """
    try:
        return _inspect(root, package)
    except OSError as err:
        raise SourceError(f"--source {root}: cannot read {err.filename}: {err.strerror}") from None


def _inspect(root: Path, package: str) -> SourceTree:
    if not root.exists():
        raise SourceError(f"--source {root}: no such directory; point it at your Go module")
    if not root.is_dir():
        raise SourceError(f"--source {root}: not a directory; point it at your Go module")
    if not any(root.iterdir()):
        raise SourceError(f"--source {root}: the directory is empty; it needs a Go main package")
    package_dir = (root / package).resolve()
    if not package_dir.is_relative_to(root.resolve()):
        raise SourceError(f"--package {package}: it must be inside --source {root}")
    if not package_dir.is_dir():
        raise SourceError(f"--package {package}: no such directory in {root}")
    names = {
        name
        for name in (
            _package_name(f) for f in _go_files(package_dir) if not f.name.endswith("_test.go")
        )
        if name is not None
    }
    if not names:
        raise SourceError(
            f"--source {root}: no Go files in package {package}; it needs a main package"
        )
    if names != {"main"}:
        found = ", ".join(sorted(names))
        raise SourceError(
            f"--source {root}: package {package} is `package {found}`, not a main package; "
            "point --package at the command to build (e.g. ./cmd/server)"
        )
    escaping = _escaping_links(root)
    if escaping:
        raise SourceError(
            f"--source {root}: {escaping[0]} is a symlink out of the tree; the build cannot "
            "follow it: copy the file in, or move --source up to include its target"
        )
    return SourceTree(
        root=root,
        package=package,
        module=(root / "go.mod").is_file(),
        vendored=(root / "vendor" / "modules.txt").is_file(),
        include=(*_BUILD_INPUTS, *_embed_patterns(root)),
    )
