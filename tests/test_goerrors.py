"""pipeline.goerrors: the go command's module-fetch failures, as it prints them, in one line
naming the host; anything else left alone."""

from __future__ import annotations

import pytest

from pipeline.goerrors import module_refusal

PROXY_401 = (
    "go: downloading example.com/private/greet v1.0.0\n"
    "go: example.com/private/greet@v1.0.0: reading "
    "https://athens.acme.dev/proxy/example.com/private/greet/@v/v1.0.0.info: 401 Unauthorized\n"
)
GIT_NO_PROTOCOL = "go: 192.0.2.1/git/words.git@v1.0.0: no secure protocol found for repository\n"
GIT_USERNAME = (
    "go: github.com/acme/secret@v1.2.0: invalid version: git ls-remote -q origin in "
    "/go/pkg/mod/cache/vcs/0123: exit status 128:\n"
    "\tfatal: could not read Username for 'https://github.com': terminal prompts disabled\n"
)
UNTRUSTED = (
    "go: example.com/private/greet@v1.0.0: Get "
    '"https://192.0.2.1/proxy/example.com/private/greet/@v/v1.0.0.info": '
    "tls: failed to verify certificate: x509: certificate signed by unknown authority\n"
)


@pytest.mark.parametrize(
    ("output", "want"),
    [
        (
            PROXY_401,
            "the module host athens.acme.dev refused example.com/private/greet@v1.0.0 "
            "(401 Unauthorized): give its credentials with --netrc or --module-token",
        ),
        (
            GIT_NO_PROTOCOL,
            "the module host 192.0.2.1 refused 192.0.2.1/git/words.git@v1.0.0 over git "
            "(no login it takes): give its credentials with --netrc or --module-token",
        ),
        (
            GIT_USERNAME,
            "the module host github.com refused github.com/acme/secret@v1.2.0 over git "
            "(no login it takes): give its credentials with --netrc or --module-token",
        ),
        (
            UNTRUSTED,
            "the module host 192.0.2.1's certificate is not trusted: give its CA with --module-ca",
        ),
    ],
)
def test_a_refusal_is_one_line_naming_the_host(output: str, want: str) -> None:
    got = module_refusal(output)
    assert got == want, f"got {got!r}, want {want!r}"


def test_a_compiler_error_is_not_a_refusal() -> None:
    assert module_refusal("./main.go:3:2: undefined: greet\n") is None
