"""pipeline.cli.options: BuildFlags' fields are the build commands' options, each declared once
with its help and environment variable; the password is never one of them."""

from __future__ import annotations

import inspect
from dataclasses import fields

from typer.testing import CliRunner

from pipeline.cli import commands
from pipeline.cli.options import BuildFlags, flag_parameters, option


def test_every_flag_field_is_a_keyword_parameter_with_its_default() -> None:
    signature = flag_parameters(BuildFlags, option("verbose", False, bool))
    names = list(signature.parameters)
    flag_fields = [f.name for f in fields(BuildFlags) if f.metadata.get("flag", True)]
    assert {f.name for f in fields(BuildFlags)} - set(flag_fields) == {
        "registry_password",
        "netrc_text",
        "sign_password",
    }
    assert names == [*flag_fields, "verbose"]
    assert signature.parameters["runtime_image"].default == BuildFlags().runtime_image
    assert all(p.kind is inspect.Parameter.KEYWORD_ONLY for p in signature.parameters.values())


def test_the_password_is_no_flag_and_no_repr() -> None:
    assert "registry_password" not in flag_parameters(BuildFlags).parameters
    assert "s3cret" not in repr(
        BuildFlags(registry_password="s3cret", netrc_text="s3cret", sign_password="s3cret")
    )
    assert "sign_password" not in flag_parameters(BuildFlags).parameters
    helped = CliRunner().invoke(commands.app, ["builder", "--help"], env={"COLUMNS": "200"})
    assert helped.exit_code == 0
    assert "--registry-password" not in helped.output
    for flag in ("--source", "--lock", "--registry-ca", "--source-date-epoch", "--watch"):
        assert flag in helped.output, f"{flag} missing from builder --help"
