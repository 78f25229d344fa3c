"""The checks of the private-module flags (pipeline.cli.module_options), each one line naming
the flag and what to write, and the Modules value they resolve into: the .netrc made of
--netrc (or PIPELINE_NETRC) and each --module-token's variable, held as a Secret."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import TYPE_CHECKING

from pipeline.errors import NETRC_ENV, UsageError
from pipeline.settings import Modules, Secret

if TYPE_CHECKING:  # the flags' type only
    from pipeline.cli.options import BuildFlags

_TOKEN = re.compile(r"^(?:([^@=\s]+)@)?([A-Za-z0-9.-]+(?::\d+)?)=([A-Za-z_][A-Za-z0-9_]*)$")
TOKEN_LOGIN = "oauth2"  # GitLab's for its tokens; GitHub takes any login with a token


def _token_lines(values: list[str], environ: Mapping[str, str]) -> list[str]:
    lines = []
    for text in values:
        match = _TOKEN.match(text.strip())
        if match is None:
            raise UsageError(
                f"--module-token {text!r} is malformed: write [LOGIN@]HOST=VARIABLE, e.g. "
                "github.com=GITHUB_TOKEN (the token itself never goes on the command line)"
            )
        login, host, variable = match[1] or TOKEN_LOGIN, match[2], match[3]
        token = environ.get(variable, "")
        if not token:
            raise UsageError(f"--module-token {text}: ${variable} is not set")
        if any(c.isspace() for c in token):
            raise UsageError(
                f"--module-token {text}: ${variable} holds whitespace; a token has none"
            )
        lines.append(f"machine {host} login {login} password {token}")
    return lines


def modules(flags: BuildFlags, environ: Mapping[str, str]) -> Modules:
    """Where the go command finds private modules, and the credentials it may use there."""
    if flags.netrc is not None and flags.netrc_text:
        raise UsageError(f"--netrc and ${NETRC_ENV} both give a .netrc: give one")
    text = flags.netrc_text or ""
    if flags.netrc is not None:
        try:
            text = flags.netrc.read_text()
        except OSError as err:
            raise UsageError(f"--netrc {flags.netrc}: {err.strerror or err}") from None
    lines = [text.strip()] if text.strip() else []
    lines += _token_lines(flags.module_token or [], environ)
    if flags.module_ca is not None and not flags.module_ca.is_file():
        raise UsageError(f"--module-ca {flags.module_ca}: no such file")
    return Modules(
        goprivate=flags.goprivate or "",
        goproxy=flags.goproxy or "",
        gonosumdb=flags.gonosumdb or "",
        netrc=Secret("\n".join(lines) + "\n") if lines else None,
        ca=flags.module_ca,
    )
