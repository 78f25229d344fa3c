"""pipeline.cli.checks: names, packages and logins are checked once. (Moved here from
tests/test_settings.py with the checks.)"""

from __future__ import annotations

import pytest

from pipeline.cli.checks import check_name, check_package, check_registry_auth, default_output
from pipeline.refs import SettingsError, parse_image_ref
from pipeline.settings import Secret, Variant


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


def test_default_output() -> None:
    assert str(default_output("helloworld", Variant.BUILDER)) == "build/helloworld-builder.tar"
