"""Private modules: the go command told where they are (GOPRIVATE, GOPROXY, GONOSUMDB), and,
where credentials or a CA are given, a `go mod download` step of its own that alone sees
them: the .netrc as a Dagger secret (never in a layer, a log or the cache), the CA beside it.
The steps after it read the module cache only (GOPROXY=off): nothing they run can reach a
module host. Lazy, like every recipe."""

from __future__ import annotations

import dagger
from dagger import dag

from pipeline.recipe.source import SourceTree
from pipeline.settings import Settings

HOME = "/run/pipeline/home"  # the download's $HOME: git (curl) reads $HOME/.netrc only
NETRC = f"{HOME}/.netrc"
CA_DIR = "/run/pipeline/module-ca"
SECRET = "pipeline-module-netrc"


def with_modules(
    container: dagger.Container, settings: Settings, tree: SourceTree
) -> dagger.Container:
    """The container with the module settings and, if credentials or a CA are given, the
    modules downloaded with them (then gone again). Unchanged for a vendored tree."""
    modules = settings.modules
    if tree.vendored:
        return container  # offline already (GOPROXY=off, -mod=vendor)
    for key, value in modules.env():
        container = container.with_env_variable(key, value)
    if modules.netrc is None and modules.ca is None:
        return container
    step = container
    if modules.ca is not None:
        # Go reads every file in SSL_CERT_DIR beside its CA bundle; git is told per host.
        ca = f"{CA_DIR}/ca.pem"
        step = step.with_mounted_file(ca, dag.host().file(str(modules.ca)))
        step = step.with_env_variable("SSL_CERT_DIR", CA_DIR)
        hosts = modules.private_hosts
        step = step.with_env_variable("GIT_CONFIG_COUNT", str(len(hosts)))
        for index, host in enumerate(hosts):
            step = step.with_env_variable(
                f"GIT_CONFIG_KEY_{index}", f"http.https://{host}/.sslCAInfo"
            )
            step = step.with_env_variable(f"GIT_CONFIG_VALUE_{index}", ca)
    if modules.netrc is not None:
        secret = dag.set_secret(SECRET, modules.netrc.value)
        step = step.with_mounted_secret(NETRC, secret, mode=0o400)
        step = step.with_env_variable("HOME", HOME).with_env_variable("NETRC", NETRC)
    step = step.with_exec(["go", "mod", "download"])
    # Gone again: what follows reads the module cache only (no module host, no credential).
    if modules.netrc is not None:
        step = step.without_mount(NETRC).without_env_variable("HOME").without_env_variable("NETRC")
    if modules.ca is not None:
        step = step.without_mount(f"{CA_DIR}/ca.pem").without_env_variable("SSL_CERT_DIR")
        step = step.without_env_variable("GIT_CONFIG_COUNT")
        for index in range(len(modules.private_hosts)):
            step = step.without_env_variable(f"GIT_CONFIG_KEY_{index}")
            step = step.without_env_variable(f"GIT_CONFIG_VALUE_{index}")
    return step.with_env_variable("GOPROXY", "off")
