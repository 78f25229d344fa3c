"""pipeline.recipe.source: a Go main package is found, anything else refused in one line."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.recipe.source import SourceError, inspect_source

ROOT = Path(__file__).resolve().parent.parent


def write(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


def test_go_src_is_a_main_module() -> None:
    tree = inspect_source(ROOT / "go-src", ".")
    assert tree.module
    assert not tree.vendored
    assert "**/*.go" in tree.include
    assert "**/go.sum" in tree.include


@pytest.mark.parametrize(
    ("files", "package", "message"),
    [
        (None, ".", "no such directory"),
        ({}, ".", "empty"),
        ({"README": "x"}, ".", "no Go files"),
        ({"lib.go": "package lib\n"}, ".", "`package lib`, not a main package"),
        ({"main.go": "package main\n"}, "./cmd/x", "no such directory"),
        ({"main.go": "// package main\npackage tools\n"}, ".", "`package tools`"),
    ],
)
def test_refused(tmp_path: Path, files: dict[str, str] | None, package: str, message: str) -> None:
    root = tmp_path / "src"
    if files is not None:
        root.mkdir()
        write(root, files)
    with pytest.raises(SourceError, match=message):
        inspect_source(root, package)


def test_not_a_directory(tmp_path: Path) -> None:
    file = tmp_path / "main.go"
    file.write_text("package main\n")
    with pytest.raises(SourceError, match="not a directory"):
        inspect_source(file, ".")


def test_package_outside_source(tmp_path: Path) -> None:
    write(tmp_path / "src", {"main.go": "package main\n"})
    with pytest.raises(SourceError, match="inside --source"):
        inspect_source(tmp_path / "src", "./../..")


def test_command_in_a_subdirectory_and_vendor(tmp_path: Path) -> None:
    root = write(
        tmp_path,
        {
            "go.mod": "module x\n",
            "lib.go": "package x\n",
            "lib_test.go": "package x_test\n",
            "cmd/server/main.go": "/* a server */\npackage main\n",
            "vendor/modules.txt": "# none\n",
        },
    )
    tree = inspect_source(root, "./cmd/server")
    assert tree.vendored
    assert tree.package == "./cmd/server"


def test_embedded_files_are_uploaded(tmp_path: Path) -> None:
    root = write(
        tmp_path,
        {
            "go.mod": "module x\n",
            "main.go": (
                'package main\n\nimport _ "embed"\n\n//go:embed static "my file.txt"\n'
                "var s string\n"
            ),
            "web/page.go": "package web\n\n//go:embed all:templates\nvar t string\n",
        },
    )
    include = inspect_source(root, ".").include
    for pattern in ("static", "static/**", "my file.txt", "web/templates", "web/templates/**"):
        assert pattern in include, f"{pattern!r} missing from {include}"
