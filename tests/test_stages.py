"""pipeline.recipe.stages against the real engine: only what a Go build reads is uploaded, and the
binary is static and stripped."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

import anyio
import dagger
import pytest

from pipeline.recipe.source import inspect_source
from pipeline.recipe.stages import OUT_DIR, go_build, source_dir, toolchain
from pipeline.refs import Platform
from pipeline.settings import Settings, Variant

pytestmark = pytest.mark.engine
T = TypeVar("T")
GO_IMAGE = "golang:1.26"


@pytest.fixture
def in_session(
    engine_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> Callable[[Callable[[], Awaitable[T]]], T]:
    """Run an async function inside a Dagger session on the test bed's engine."""
    for key, value in engine_env.items():
        if key.startswith(("_EXPERIMENTAL_DAGGER", "DAGGER_", "DO_NOT_TRACK")):
            monkeypatch.setenv(key, value)

    def run(body: Callable[[], Awaitable[T]]) -> T:
        async def session() -> T:
            async with dagger.connection(dagger.Config(log_output=None)):
                return await body()

        return anyio.run(session)

    return run


def test_upload_holds_only_build_inputs(
    in_session: Callable[[Callable[[], Awaitable[list[str]]]], list[str]], tmp_path: Path
) -> None:
    for name, content in {
        "go.mod": b"module x\n",
        "main.go": b"package main\nfunc main() {}\n",
        "internal/a/a.go": b"package a\n",
        "internal/a/testdata/case.txt": b"input\n",
        ".git/HEAD": b"ref: refs/heads/main\n",
        "build/old.tar": b"x" * 1024,
        "README.md": b"# x\n",
    }.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
    with (tmp_path / "big.bin").open("wb") as big:
        big.truncate(200 * 1024 * 1024)  # 200 MB the build never reads
    tree = inspect_source(tmp_path, ".")

    async def files() -> list[str]:
        return sorted(await source_dir(tree).glob("**/*"))

    got = in_session(files)
    assert [f for f in got if not f.endswith("/")] == [
        "go.mod",
        "internal/a/a.go",
        "internal/a/testdata/case.txt",
        "main.go",
    ]


def test_binary_is_static_and_stripped(
    in_session: Callable[[Callable[[], Awaitable[bytes]]], bytes], tmp_path: Path
) -> None:
    root = Path(__file__).resolve().parent.parent / "go-src"
    settings = Settings(variant=Variant.MULTISTAGE, source=root, go_image=GO_IMAGE)
    tree = inspect_source(root, ".")
    build = go_build(toolchain(settings, tree), settings, tree, Platform("linux", "amd64"))
    binary = build.file(f"{OUT_DIR}/{settings.name}")

    async def contents() -> bytes:
        path = tmp_path / "helloworld"
        await binary.export(str(path))
        return path.read_bytes()

    elf = in_session(contents)
    assert elf[:4] == b"\x7fELF"
    assert b"/lib64/ld-linux" not in elf, "dynamically linked: has an ELF interpreter"
    assert b".symtab" not in elf, "not stripped: has a symbol table"
    assert b"/src/greeting.go" not in elf, "-trimpath missing: build paths in the binary"
    assert 1_000_000 < len(elf) < 2_500_000
