"""A Go binary's build info, read from its bytes: what `go version -m -json BINARY` prints
(Go's debug/buildinfo and runtime/debug.ParseBuildInfo, in Python), without running anything.

The Go linker (1.18 and later) writes a blob into the binary's `.go.buildinfo` section: a
32-byte header starting "\\xff Go buildinf:", then two varint-prefixed strings, the Go version
and the module info (the lines `path`, `mod`, `dep`, `=>`, `build`, framed by 16-byte
sentinels). Only ELF binaries are read (pyelftools finds the blob): the images hold Linux
programs.
"""

from __future__ import annotations

import io
from typing import Any

MAGIC = b"\xff Go buildinf:"
_ALIGN = 16
_HEADER = 32
_FLAGS_VERSION_INLINE = 0x2
_PF_X, _PF_W = 0x1, 0x2


class BuildInfoError(ValueError):
    """The bytes are not a Go binary whose build info can be read here."""


def load() -> None:
    """Import pyelftools (about 40 ms): the build flow calls this in a thread while the engine
    compiles, so that reading the build info after the build does not wait for it."""
    import elftools.elf.elffile  # noqa: F401


class _Elf:
    """Where a Go binary's build info lies, read with pyelftools: the `.go.buildinfo` section,
    else the first writable, non-executable segment (debug/buildinfo's DataStart), and the
    file's bytes from an address to the end of its segment."""

    def __init__(self, data: bytes) -> None:
        from elftools.common.exceptions import ELFError  # see load
        from elftools.elf.elffile import ELFFile

        self.data = data
        try:
            self.elf = ELFFile(io.BytesIO(data))
            self.loads = [s.header for s in self.elf.iter_segments("PT_LOAD")]
            section = self.elf.get_section_by_name(".go.buildinfo")
        except ELFError as err:
            message = "not an ELF binary" if data[:4] != b"\x7fELF" else "a truncated ELF binary"
            raise BuildInfoError(message) from err
        self.section = None if section is None else (section["sh_addr"], section["sh_size"])

    def data_start(self) -> tuple[int, int]:
        if self.section is not None:
            return self.section
        for header in self.loads:
            if header["p_flags"] & (_PF_X | _PF_W) == _PF_W:
                return header["p_vaddr"], header["p_filesz"]
        raise BuildInfoError("no data segment: not a Go binary")

    def read_from(self, addr: int) -> memoryview:
        for header in self.loads:
            vaddr, offset, filesz = header["p_vaddr"], header["p_offset"], header["p_filesz"]
            if vaddr <= addr < vaddr + filesz:
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
