"""A Go binary's build info, read from its bytes: what `go version -m -json BINARY` prints
(Go's debug/buildinfo and runtime/debug.ParseBuildInfo, in Python), without running anything.

The Go linker (1.18 and later) writes a blob into the binary's `.go.buildinfo` section: a
32-byte header starting "\\xff Go buildinf:", then two varint-prefixed strings, the Go version
and the module info (the lines `path`, `mod`, `dep`, `=>`, `build`, framed by 16-byte
sentinels). Only ELF binaries are read: the images hold Linux programs.
"""

from __future__ import annotations

import struct
from typing import Any

MAGIC = b"\xff Go buildinf:"
_ALIGN = 16
_HEADER = 32
_FLAGS_VERSION_INLINE = 0x2
_PT_LOAD = 1
_PF_X, _PF_W = 0x1, 0x2


class BuildInfoError(ValueError):
    """The bytes are not a Go binary whose build info can be read here."""


class _Elf:
    """Just enough of an ELF file to find its data: sections by name, segments by address."""

    def __init__(self, data: bytes) -> None:
        if data[:4] != b"\x7fELF" or len(data) < 64:
            raise BuildInfoError("not an ELF binary")
        wide, order = data[4], {1: "<", 2: ">"}.get(data[5])
        if wide not in (1, 2) or order is None:
            raise BuildInfoError("not an ELF binary")
        self.data = data
        word = "Q" if wide == 2 else "I"
        if wide == 2:
            phoff, shoff = struct.unpack_from(order + "QQ", data, 0x20)
            phentsize, phnum, shentsize, shnum, shstrndx = struct.unpack_from(
                order + "5H", data, 0x36
            )
        else:
            phoff, shoff = struct.unpack_from(order + "II", data, 0x1C)
            phentsize, phnum, shentsize, shnum, shstrndx = struct.unpack_from(
                order + "5H", data, 0x2A
            )
        try:
            # (type, flags, offset, vaddr, filesz) of each segment
            self.segments = [
                self._segment(order, word, phoff + i * phentsize) for i in range(phnum)
            ]
            # the section table: (name, type, flags, addr, offset, size) each
            raw = [
                struct.unpack_from(order + "II" + word * 4, data, shoff + i * shentsize)
                for i in range(shnum)
            ]
        except struct.error:
            raise BuildInfoError("a truncated ELF binary") from None
        self.sections: dict[str, tuple[int, int]] = {}
        if raw and shstrndx < len(raw):
            names_at = raw[shstrndx][4]
            for name, _, _, addr, _, size in raw:
                end = data.find(b"\0", names_at + name)
                self.sections[data[names_at + name : end].decode(errors="replace")] = (addr, size)

    def _segment(self, order: str, word: str, at: int) -> tuple[int, int, int, int, int]:
        if word == "Q":
            kind, flags, offset, vaddr, _, filesz = struct.unpack_from(
                order + "II4Q", self.data, at
            )
        else:
            kind, offset, vaddr, _, filesz, _, flags = struct.unpack_from(
                order + "7I", self.data, at
            )
        return kind, flags, offset, vaddr, filesz

    def data_start(self) -> tuple[int, int]:
        """Where the build info lies: the `.go.buildinfo` section, else the first writable,
        non-executable segment (debug/buildinfo's DataStart)."""
        if ".go.buildinfo" in self.sections:
            return self.sections[".go.buildinfo"]
        for kind, flags, _, vaddr, filesz in self.segments:
            if kind == _PT_LOAD and flags & (_PF_X | _PF_W) == _PF_W:
                return vaddr, filesz
        raise BuildInfoError("no data segment: not a Go binary")

    def read_from(self, addr: int) -> memoryview:
        """The file's bytes from virtual address `addr` to the end of its segment."""
        for kind, _, offset, vaddr, filesz in self.segments:
            if kind == _PT_LOAD and vaddr <= addr < vaddr + filesz:
                return memoryview(self.data)[offset + addr - vaddr : offset + filesz]
        raise BuildInfoError(f"address {addr:#x} is in no segment of the file")


def _uvarint(data: memoryview, at: int) -> tuple[int, int]:
    """A varint (encoding/binary.Uvarint) at `at`: its value and the offset after it."""
    value = shift = 0
    for index in range(at, min(at + 10, len(data))):
        byte = data[index]
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, index + 1
        shift += 7
    raise BuildInfoError("a malformed build info blob")


def _string(data: memoryview, at: int) -> tuple[str, int]:
    length, at = _uvarint(data, at)
    if at + length > len(data):
        raise BuildInfoError("a malformed build info blob")
    return bytes(data[at : at + length]).decode(errors="replace"), at + length


def raw(binary: bytes) -> tuple[str, str]:
    """The Go version and the module info text the linker wrote into `binary`."""
    elf = _Elf(binary)
    start, size = elf.data_start()
    region = elf.read_from(start)
    window = bytes(region[:size])
    first = -start % _ALIGN  # the blob is aligned in memory, not merely in the file
    at = window.find(MAGIC, first)
    while at >= 0 and (at - first) % _ALIGN:
        at = window.find(MAGIC, at + 1)
    if at < 0 or at + _HEADER > len(region):
        raise BuildInfoError("no Go build info: not a Go binary")
    if not region[at + 15] & _FLAGS_VERSION_INLINE:
        raise BuildInfoError("build info in the pre-1.18 format: built by Go older than 1.18")
    version, at = _string(region, at + _HEADER)
    modinfo, _ = _string(region, at)
    if not version:
        raise BuildInfoError("no Go version in the build info")
    # The module info is framed by two 16-byte sentinels (cmd/go's infoStart, infoEnd).
    if len(modinfo) >= 33 and modinfo[-17] == "\n":
        return version, modinfo[16:-16]
    return version, ""


def _module(columns: list[str], line: int) -> dict[str, Any]:
    if len(columns) not in (2, 3):
        raise BuildInfoError(f"line {line}: expected 2 or 3 columns; got {len(columns)}")
    return _omit_empty({"Path": columns[0], "Version": columns[1], "Sum": "".join(columns[2:])})


def _omit_empty(fields: dict[str, Any]) -> dict[str, Any]:
    """As encoding/json writes a struct whose fields are all `omitempty`."""
    return {key: value for key, value in fields.items() if value}


_QUOTES = ('"', "`")


def _unquote(text: str, line: int) -> str:
    """A Go string literal (strconv.Unquote): its quotes off, its escapes read."""
    if len(text) < 2 or text[0] != text[-1] or text[0] not in _QUOTES:
        raise BuildInfoError(f"line {line}: a malformed quoted string in a build line")
    if text[0] == "`":
        return text[1:-1]
    try:
        return text[1:-1].encode("latin-1", "backslashreplace").decode("unicode_escape")
    except UnicodeDecodeError:
        raise BuildInfoError(f"line {line}: a malformed quoted string in a build line") from None


def _quoted_prefix(text: str, line: int) -> str:
    """The Go string literal at the start of `text` (strconv.QuotedPrefix)."""
    quote, escaped = text[0], False
    for index in range(1, len(text)):
        char = text[index]
        if escaped:
            escaped = False
        elif char == "\\" and quote == '"':
            escaped = True
        elif char == quote:
            return text[: index + 1]
    raise BuildInfoError(f"line {line}: invalid quoted key in build line")


def _setting(text: str, line: int) -> dict[str, str]:
    """A `build` line's key and value (runtime/debug.ParseBuildInfo's rules)."""
    if not text:
        raise BuildInfoError(f"line {line}: build line missing '='")
    if text[0] == "=":
        raise BuildInfoError(f"line {line}: build line with missing key")
    if text[0] in _QUOTES:
        quoted = _quoted_prefix(text, line)
        if text[len(quoted) : len(quoted) + 1] != "=":
            raise BuildInfoError(f"line {line}: build line missing '=' after quoted key")
        key, value = _unquote(quoted, line), text[len(quoted) + 1 :]
    else:
        key, equals, value = text.partition("=")
        if not equals:
            raise BuildInfoError(f"line {line}: build line missing '=' after key")
        if not key or any(char in key for char in '= \t\r\n"`'):
            raise BuildInfoError(f"line {line}: unquoted key {key!r} must be quoted")
    if value[:1] in _QUOTES:
        value = _unquote(value, line)
    elif any(char in value for char in ' \t\r\n"`'):
        raise BuildInfoError(f"line {line}: unquoted value {value!r} must be quoted")
    return _omit_empty({"Key": key, "Value": value})


def parse(version: str, modinfo: str) -> dict[str, Any]:
    """The build info as `go version -m -json` prints it (json.loads of its output)."""
    path = ""
    main: dict[str, Any] = {}
    deps: list[dict[str, Any]] = []
    settings: list[dict[str, str]] = []
    last: dict[str, Any] | None = None
    # Every line ends in a newline; text after the last one is not a line (as in Go).
    for number, line in enumerate(modinfo.split("\n")[:-1], start=1):
        kind, tab, rest = line.partition("\t")
        if not tab:
            continue
        if kind == "path":
            path = rest
        elif kind == "mod":
            main = last = _module(rest.split("\t"), number)
        elif kind == "dep":
            last = _module(rest.split("\t"), number)
            deps.append(last)
        elif kind == "=>":
            columns = rest.split("\t")
            if len(columns) != 3:
                raise BuildInfoError(f"line {number}: expected 3 columns for replacement")
            if last is None:
                raise BuildInfoError(f"line {number}: replacement with no module before it")
            last["Replace"] = _omit_empty(
                dict(zip(("Path", "Version", "Sum"), columns, strict=True))
            )
            last = None
        elif kind == "build":
            settings.append(_setting(rest, number))
    found = {"GoVersion": version, "Path": path, "Main": main, "Deps": deps, "Settings": settings}
    return {key: value for key, value in found.items() if value or key == "Main"}  # omitempty


def read(binary: bytes) -> dict[str, Any]:
    """The build info of the Go binary `binary`, as `go version -m -json` prints it.
    BuildInfoError if it is not an ELF Go binary built by Go 1.18 or later."""
    return parse(*raw(binary))
