"""What the go command's failures to fetch a module mean, in one line naming the module host
that refused, instead of its page of output: a refused login (401, 403, git's "could not read
Username", "no secure protocol found"), or a certificate it does not trust."""

from __future__ import annotations

import re

_URL_REFUSED = re.compile(r"(\S+@\S+): reading https?://([^/\s]+)\S*: (40[13] [A-Za-z ]+)")
_NO_PROTOCOL = re.compile(r"(\S+@\S+): no secure protocol found for repository")
_GIT_LOGIN = re.compile(
    r"(?:could not read Username for|Authentication failed for) '?https?://([^/'\s]+)"
)
_UNTRUSTED = re.compile(r"https?://([^/\s]+)\S*: .*x509: certificate signed by unknown authority")
_MODULE = re.compile(r"^go: (\S+@\S+):", re.M)
ASK = "give its credentials with --netrc or --module-token"


def module_refusal(output: str) -> str | None:
    """One line for a module host's refusal in the go command's `output`, or None."""
    if found := _URL_REFUSED.search(output):
        module, host, status = found.groups()
        return f"the module host {host} refused {module} ({status.strip()}): {ASK}"
    if found := _UNTRUSTED.search(output):
        return (
            f"the module host {found[1]}'s certificate is not trusted: give its CA with --module-ca"
        )
    login = _GIT_LOGIN.search(output)
    bare = _NO_PROTOCOL.search(output)
    if login or bare:
        module = bare[1] if bare else (m[1] if (m := _MODULE.search(output)) else "a module")
        host = login[1] if login else module.split("/")[0]
        return f"the module host {host} refused {module} over git (no login it takes): {ASK}"
    return None
