"""pipeline.settings: names, packages and logins are checked once. (The tests of platforms
and image references moved to tests/test_refs.py with them.)"""

from __future__ import annotations

import pytest

from pipeline.refs import SettingsError, parse_image_ref
from pipeline.settings import (
    Secret,
    Variant,
    check_name,
    check_package,
    check_registry_auth,
    default_output,
)


def test_check_name() -> None:
    assert check_name("helloworld") == "helloworld"
    assert check_name("hello-world_2") == "hello-world_2"
    for bad in ("Hello", "hello/world", "-x", "", "a:b"):
        with pytest.raises(SettingsError, match="--name"):
            check_name(bad)


def test_check_package() -> None:
    assert check_package(".") == "."
    assert check_package("./cmd/server") == "./cmd/server"
    for bad in ("cmd/server", "../x", "./a/../../b", "/abs"):
        with pytest.raises(SettingsError, match="--package"):
            check_package(bad)


def test_registry_auth_needs_both_halves_and_publish() -> None:
    ref = parse_image_ref("127.0.0.1:5443/x:y", option="--publish")
    check_registry_auth(ref, "u", Secret("p"))
    check_registry_auth(None, None, None)
    with pytest.raises(SettingsError, match="PIPELINE_REGISTRY_PASSWORD"):
        check_registry_auth(ref, "u", None)
    with pytest.raises(SettingsError, match="--registry-username"):
        check_registry_auth(ref, None, Secret("p"))
    with pytest.raises(SettingsError, match="only used with --publish"):
        check_registry_auth(None, "u", Secret("p"))


def test_secret_never_prints() -> None:
    secret = Secret("hunter2")
    assert "hunter2" not in repr(secret)
    assert "hunter2" not in str(secret)
    assert "hunter2" not in repr({"password": secret})
    assert secret.value == "hunter2"


def test_default_output() -> None:
    assert str(default_output("helloworld", Variant.BUILDER)) == "build/helloworld-builder.tar"
