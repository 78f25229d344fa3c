"""A registry's answers and requests' failures as one line each (RegistryError) that names
the registry and what to do."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import urlsplit

import requests

from pipeline.errors import RegistryError, auth_failed, unreachable_reason
from pipeline.refs import ImageRef


@contextmanager
def one_line_errors(ref: ImageRef) -> Iterator[None]:
    """requests' and oras' failures as one line naming the registry."""
    try:
        yield
    except requests.exceptions.SSLError as err:
        raise RegistryError(
            f"registry {ref.registry}: TLS verification failed; give its CA with --registry-ca"
            f" ({type(err).__name__})"
        ) from None
    except requests.exceptions.Timeout:
        raise RegistryError(f"registry {ref.registry} did not answer in time") from None
    except requests.exceptions.ConnectionError as err:
        reason = unreachable_reason(str(err)) or "no connection"
        raise RegistryError(
            f"registry {ref.registry} unreachable ({reason}): is it up, is the address right?"
        ) from None
    except (ValueError, FileNotFoundError) as err:  # oras: a layout it cannot push
        raise RegistryError(f"push to {ref.registry} failed: {err}") from None


def request_of(response: requests.Response) -> str:
    """`PUT /v2/team/app/manifests/v1`: the request a response answers."""
    method = response.request.method if response.request is not None else "request"
    return f"{method} {urlsplit(response.url or '').path}"


def check_answer(response: requests.Response, ref: ImageRef, what: str) -> None:
    """RegistryError, one line naming the registry, unless the answer is a success."""
    code = response.status_code
    if code == 401:
        raise auth_failed(ref.registry)
    if code == 403:
        raise RegistryError(
            f"registry {ref.registry} refused {what}: the login may not push to {ref.repository}"
        )
    if code == 404 and "/blobs/uploads/" in (response.url or ""):
        raise RegistryError(
            f"registry {ref.registry} lost an upload under way (HTTP 404: it restarted, or "
            "expired the upload): push again"
        )
    if code >= 300:
        raise RegistryError(f"registry {ref.registry}: {what} failed: HTTP {code}")
