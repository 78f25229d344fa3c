"""pipeline.flows.gocache: the Go caches through the test bed's real registries, against the real
engine.

A fresh CI runner is the test bed's second engine, started on an empty state directory
(`tests/testbed/up --fresh-runner`). Where a test needs many fresh starts, fresh volumes
stand in for it: a run whose --cache-to (or, reading only, --cache-from) names a repository
no run used before gets cache volumes of its own, empty, and its build exec is not one the
engine has answered before (its mounts differ), so `go build` really runs on what was
restored. Where a test asserts nothing of the program, it builds TINY, whose cold build is
half go-src's. A test that only writes its cache, and asserts nothing about what was saved, uses
kept() instead: the same REF on every run, whose volumes the next run of the suite finds warm
(a cold build of go-src is about 11 s of the engine's CPU)."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import shutil
import subprocess
import tarfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from dagger import dag

from pipeline.cli.checks import check_cache_ref, check_registry_auth
from pipeline.flows.cache_artifact import (
    ARTIFACT,
    BUILD_LAYER,
    CHUNK,
    MOD_LAYER,
    deflate_tar,
    inflate,
    merge,
)
from pipeline.flows.gocache import cache_tag
from pipeline.recipe import cache_steps
from pipeline.recipe.cache_steps import module_files
from pipeline.recipe.stages import cache_volumes
from pipeline.refs import Platform, SettingsError, parse_image_ref
from pipeline.registry.access import Deadline, Login
from pipeline.registry.remote import push_artifact
from pipeline.results import human_size
from pipeline.settings import Secret, Settings, Variant
from tests.conftest import (
    ROOT,
    PipelineRunner,
    Ran,
    Testbed,
    go_images,
    in_session,
    registry_digest,
    start_fresh_runner,
    stop_fresh_runner,
)

AMD64, ARM64 = Platform("linux", "amd64"), Platform("linux", "arm64")
BASES = ("--go-image", "golang:1.26", "--runtime-image", "busybox:1.35")
# For the tests that build on empty volumes and assert nothing of the program: its cold build
# costs about half of go-src's (the runtime alone, not fmt and os).
TINY = ROOT / "tests/fixtures/tiny"


def unique() -> str:
    return f"{time.time_ns():x}"[-12:]


def kept(testbed: Testbed, name: str) -> str:
    """A cache REF on the plain registry that every run of the suite uses again, where
    unique() would give a new one: its volumes on the test bed's engine stay warm from one
    run to the next, so the build does not compile the standard library again. Only for a
    test whose assertions hold whatever its save holds: the engine may answer the build from
    its cache, and then the save takes only entries made in the last hour (none, a run later).
    A test that reads what was saved, restores it, or says what a build started from, needs
    unique()."""
    return f"{testbed.registry}/ci/kept-{name}:main"


# --- keys, tags, settings ------------------------------------------------------------------


def _settings(**changes: Any) -> Settings:
    return Settings(variant=Variant.MULTISTAGE, **changes)


def test_each_platform_set_and_go_image_has_a_tag_of_its_own() -> None:
    ref = parse_image_ref("127.0.0.1:5000/team/cache:main", option="--cache-to")
    tags = {
        cache_tag(ref, _settings(go_image=go), platforms)
        for go in ("golang:1.26", "golang:1.25")
        for platforms in ((AMD64,), (ARM64,), (AMD64, ARM64))
    }
    assert len(tags) == 6
    assert all(t.startswith("main-linux-") and len(t) <= 128 for t in tags), tags
    many = tuple(Platform("linux", a) for a in ("amd64", "arm64", "386", "ppc64le", "s390x"))
    long = cache_tag(ref, _settings(), many)
    assert len(long) < 80
    assert long.startswith("main-")
    untagged = parse_image_ref("127.0.0.1:5000/team/cache", option="--cache-to")
    assert cache_tag(untagged, _settings(), (AMD64,)).startswith("latest-linux-amd64-go-")


def test_writers_readers_and_fresh_builds_use_different_volumes() -> None:
    main = parse_image_ref("127.0.0.1:5000/team/cache:main", option="--cache-to")
    other = parse_image_ref("127.0.0.1:5000/team/cache:other", option="--cache-to")
    plain = cache_volumes(_settings())
    writer = cache_volumes(_settings(cache_to=main, cache_from=main))
    reader = cache_volumes(_settings(cache_from=main))
    assert plain == ("pipeline-go-build", "pipeline-go-mod")
    assert len({plain, writer, reader, cache_volumes(_settings(cache_to=other))}) == 4
    assert cache_volumes(_settings(cache_from=main, cache_bust="x")) is None


def test_a_cache_ref_is_a_repository_and_tag() -> None:
    assert check_cache_ref("127.0.0.1:5000/c:main", option="--cache-to").tag == "main"
    with pytest.raises(SettingsError, match="not a digest"):
        check_cache_ref(f"127.0.0.1:5000/c@sha256:{'a' * 64}", option="--cache-from")
    with pytest.raises(SettingsError, match="not an image reference"):
        check_cache_ref("127.0.0.1:5000/C:main", option="--cache-from")


def test_credentials_go_with_a_cache_ref_and_only_to_its_registry() -> None:
    cache = parse_image_ref("registry.example:5443/team/cache:main", option="--cache-to")
    elsewhere = parse_image_ref("127.0.0.1:5000/team/cache:main", option="--cache-from")
    password = Secret("s3cret")
    check_registry_auth(None, "ci", password, None, cache)  # no --publish needed
    with pytest.raises(SettingsError, match="--cache-from or --cache-to"):
        check_registry_auth(None, "ci", password, None, None)
    settings = _settings(
        cache_to=cache, cache_from=elsewhere, registry_username="ci", registry_password=password
    )
    assert Login.of(settings, cache).password == password
    assert Login.of(settings, elsewhere) == Login(None, None, None)


# --- against the engine and the registries -------------------------------------------------


def _batch(path: Path, entries: dict[str, bytes], mtime: float, uid: int) -> None:
    """A batch as the helper's tar writes one: names as find prints them, times, owners."""
    with tarfile.open(path, "w") as out:
        for name, data in entries.items():
            info = tarfile.TarInfo(name)
            info.size, info.mtime, info.uid, info.uname, info.mode = (
                len(data),
                mtime,
                uid,
                "u",
                0o444,
            )
            out.addfile(info, io.BytesIO(data))


def test_the_save_batches_merge_into_one_tarball_whose_bytes_depend_on_the_entries(
    tmp_path: Path,
) -> None:
    entries = {f"./{i:02x}/{i:064x}-d": os.urandom(100 + i) for i in range(40)}
    names = sorted(entries)
    one, two = tmp_path / "one", tmp_path / "two"
    for directory, mtime, uid, split in ((one, 1.7e9, 0, 10), (two, 1.8e9, 1000, 30)):
        directory.mkdir()
        _batch(directory / "go-build.1.tar", {n: entries[n] for n in names[split:]}, mtime, uid)
        _batch(directory / "go-build.2.tar", {n: entries[n] for n in names[:split]}, mtime, uid)
        (directory / "go-mod.3.tar").write_bytes(b"another cache's batch")
    merged = [merge(directory, "go-build.tar") for directory in (one, two)]
    assert merged[0].read_bytes() == merged[1].read_bytes()
    assert sorted(p.name for p in one.iterdir()) == ["go-build.tar", "go-mod.3.tar"]
    with tarfile.open(merged[0]) as tar:
        members = tar.getmembers()
        assert [m.name for m in members] == [n.removeprefix("./") for n in names]
        assert {(m.mtime, m.uid, m.gid, m.uname, m.mode) for m in members} == {(0, 0, 0, "", 0o444)}
        first = tar.extractfile(members[0])
        assert first is not None
        assert first.read() == entries[names[0]]


def test_no_batch_at_all_is_an_empty_tarball(tmp_path: Path) -> None:
    with tarfile.open(merge(tmp_path, "go-build.tar")) as tar:
        assert tar.getmembers() == []


def test_the_module_files_are_each_module_zip_escaped_as_the_go_command_does() -> None:
    listed = "\n".join(
        ["", "github.com/BurntSushi/toml@v1.4.0", "filippo.io/age@v1.2.1", "",
         "github.com/BurntSushi/toml@v1.4.0", "example.com/m@v0.0.0-2024Z"]
    )  # fmt: skip
    assert module_files(listed) == [
        "cache/download/example.com/m/@v/v0.0.0-2024!z.zip",
        "cache/download/example.com/m/@v/v0.0.0-2024!z.ziphash",
        "cache/download/filippo.io/age/@v/v1.2.1.zip",
        "cache/download/filippo.io/age/@v/v1.2.1.ziphash",
        "cache/download/github.com/!burnt!sushi/toml/@v/v1.4.0.zip",
        "cache/download/github.com/!burnt!sushi/toml/@v/v1.4.0.ziphash",
    ]


def test_the_host_compresses_a_cache_reproducibly_and_inflates_it_back(tmp_path: Path) -> None:
    """Several gzip members (one per CHUNK), the same bytes for the same tarball, read back
    whole by gzip and by tar."""
    tar = tmp_path / "go-build.tar"
    entry = tarfile.TarInfo("00/entry-d")
    payload = os.urandom(1 << 14) * (CHUNK // (1 << 14) + 512)  # > CHUNK, compressible
    entry.size = len(payload)
    with tarfile.open(tar, "w", format=tarfile.GNU_FORMAT) as out:
        out.addfile(entry, io.BytesIO(payload))
    original = tar.read_bytes()
    packed = deflate_tar(tar)
    assert not tar.exists()
    assert packed.name == "go-build.tar.gz"
    again = tmp_path / "again.tar"
    again.write_bytes(original)
    assert deflate_tar(again).read_bytes() == packed.read_bytes()
    assert packed.stat().st_size < len(original) / 4
    assert gzip.decompress(packed.read_bytes()) == original
    with tarfile.open(packed, "r:gz") as read:
        assert read.getmember("00/entry-d").size == len(payload)
    assert inflate(packed).read_bytes() == original
    junk = tmp_path / "junk.tar.gz"
    junk.write_bytes(b"not gzip at all")
    with pytest.raises(gzip.BadGzipFile):
        inflate(junk)


@pytest.fixture
def fresh_runner(engine_env: dict[str, str]) -> Iterator[dict[str, str]]:
    """The environment of a run on a new runner's engine (an empty state directory)."""
    yield {"_EXPERIMENTAL_DAGGER_RUNNER_HOST": start_fresh_runner()["runner host"]}
    stop_fresh_runner()


def _build(
    pipeline: PipelineRunner, tmp: Path, name: str, *args: str, source: Path | None = None,
    env: dict[str, str] | None = None,
) -> tuple[Ran, dict[str, Any]]:  # fmt: skip
    report = tmp / f"{name}.json"
    ran = pipeline(
        "multistage", "--no-test", "--no-run", *BASES, "--source", str(source or ROOT / "go-src"),
        "--output", str(tmp / f"{name}.tar"), "--json", str(report), *args, extra_env=env,
    )  # fmt: skip
    assert ran.returncode == 0, ran.stderr
    assert "Traceback" not in ran.stderr
    return ran, json.loads(report.read_text())


def _warnings(ran: Ran) -> list[str]:
    return [line for line in ran.stderr.splitlines() if line.startswith("warning:")]


def _artifact(testbed: Testbed, saved_to: str, *creds: str) -> dict[str, Any]:
    """The cache's manifest, read with skopeo by the digest the run reported (plain HTTP
    without `creds`)."""
    name, _, digest = saved_to.partition("@")
    creds = creds or ("--tls-verify=false",)
    raw = testbed.skopeo("inspect", "--raw", *creds, f"docker://{name.rsplit(':', 1)[0]}@{digest}")
    assert raw.returncode == 0, raw.stderr
    assert "sha256:" + hashlib.sha256(raw.stdout.encode()).hexdigest() == digest
    manifest: dict[str, Any] = json.loads(raw.stdout)
    return manifest


def _members(testbed: Testbed, repository: str, layer: dict[str, Any]) -> dict[str, int]:
    """Name → size of the files in a cache layer, from the plain registry."""
    url = f"http://{testbed.registry}/v2/{repository}/blobs/{layer['digest']}"
    blob = requests.get(url, timeout=60).content
    with tarfile.open(fileobj=io.BytesIO(blob), mode="r:gz") as tar:
        return {m.name: m.size for m in tar.getmembers() if m.isfile()}


def _seed(reference: str, layers: list[tuple[Path, str]]) -> None:
    """A Go cache for golang:1.26 on linux/amd64 pushed to `reference` (a --cache-from), made
    of `layers` (file, media type) as they are, without a login."""
    ref = parse_image_ref(reference, option="--cache-from")
    settings = Settings(variant=Variant.MULTISTAGE, go_image="golang:1.26")
    push_artifact(
        layers, ref, cache_tag(ref, settings, (AMD64,)), Login(None, None, None),
        Deadline.of(60), artifact_type=ARTIFACT, annotations={},
    )  # fmt: skip


def _empty_layer(tmp: Path) -> Path:
    """An empty gzipped tarball: a build cache with nothing in it."""
    empty = tmp / "empty.tar.gz"
    with tarfile.open(empty, "w:gz"):
        pass
    return empty


@pytest.mark.engine
def test_a_cold_run_saves_and_a_fresh_engine_restores_to_the_same_digest(
    pipeline: PipelineRunner, testbed: Testbed, tmp_path: Path, fresh_runner: dict[str, str]
) -> None:
    user, password = testbed["TESTBED_AUTH_USER"], testbed["TESTBED_AUTH_PASSWORD"]
    ref = f"{testbed.auth_registry}/ci/cache-{unique()}:main"
    login = ["--registry-username", user, "--registry-ca", testbed["TESTBED_CA"]]
    env = {"PIPELINE_REGISTRY_PASSWORD": password}
    cold, first = _build(pipeline, tmp_path, "cold", "--cache-to", ref, *login, env=env)
    assert first["go_cache"]["started_from"] == "none"
    saved = first["go_cache"]["saved_to"]
    assert saved.startswith(f"{ref}-linux-amd64-go-"), saved
    manifest = _artifact(
        testbed, saved, "--creds", f"{user}:{password}", "--cert-dir", testbed["TESTBED_CERTS_DIR"]
    )
    assert manifest["artifactType"] == ARTIFACT
    # go-src is a module (not vendored): its module cache travels too (empty: no requirements)
    assert [layer["mediaType"] for layer in manifest["layers"]] == [BUILD_LAYER, MOD_LAYER]
    assert first["go_cache"]["saved_size"] == sum(la["size"] for la in manifest["layers"])

    warm, second = _build(
        pipeline, tmp_path, "warm", "--cache-from", ref, *login, env={**env, **fresh_runner}
    )
    assert second["go_cache"]["started_from"] == "registry"
    assert second["go_cache"]["restored_from"] == saved.partition("@")[0]
    assert f"go cache: started from {saved.partition('@')[0]}" in warm.stdout
    _plain, third = _build(pipeline, tmp_path, "plain")
    assert third["go_cache"] is None
    digests = {r["images"][0]["digest"] for r in (first, second, third)}
    assert len(digests) == 1, "the cache changed the image"
    for ran in (cold, warm):
        assert _warnings(ran) == []
        assert password not in ran.stdout + ran.stderr
    for written in tmp_path.iterdir():
        assert password.encode() not in written.read_bytes(), written


@pytest.mark.engine
def test_every_go_image_saves_and_a_fresh_runner_restores_to_one_digest(
    pipeline: PipelineRunner, testbed: Testbed, tmp_path: Path, fresh_runner: dict[str, str]
) -> None:
    """The Debian golang image, one on busybox and one without a shell: each saves its cache,
    a new runner restores and saves it again, and every build makes the same image (same Go,
    same flags). The helper image that packs the caches is held to the lock file."""
    digests: dict[str, set[str]] = {}
    lock = tmp_path / "bases.lock"
    for kind, image in go_images(testbed).items():
        ref = f"{testbed.registry}/ci/any-go-{kind}-{unique()}:main"
        args = ("--go-image", image, "--lock", str(lock))
        cold, first = _build(pipeline, tmp_path, f"{kind}-cold", *args, "--cache-to", ref,
                             source=TINY)  # fmt: skip
        warm, second = _build(
            pipeline, tmp_path, f"{kind}-warm", *args, "--cache-from", ref, "--cache-to", ref,
            env=fresh_runner, source=TINY,
        )  # fmt: skip
        assert first["go_cache"]["saved_to"], kind
        assert second["go_cache"]["started_from"] == "registry", kind
        assert second["go_cache"]["saved_to"], kind
        for ran in (cold, warm):
            assert _warnings(ran) == [], kind
            assert "exit code" not in ran.stdout + ran.stderr, kind
            assert "Traceback" not in ran.stderr, kind
        digests[kind] = {r["images"][0]["digest"] for r in (first, second)}
    assert len(set().union(*digests.values())) == 1, digests
    pinned = json.loads(lock.read_text())["images"]
    assert pinned["busybox:1.35"].startswith("docker.io/library/busybox:1.35@sha256:"), pinned


@pytest.mark.engine
def test_a_helper_step_that_fails_names_its_command_image_and_first_line(
    pipeline: PipelineRunner, testbed: Testbed, tmp_path: Path
) -> None:
    """A helper image without a shell: the cache is not saved, the build stands, and each
    warning says which command failed where, and what it printed (never a bare exit code)."""
    helper = testbed["TESTBED_STATIC_IMAGE"]
    ref = kept(testbed, "shell-less-helper")  # it saves nothing: the helper has no shell
    ran, report = _build(pipeline, tmp_path, "shell-less-helper", "--cache-to", ref,
                         "--helper-image", helper)  # fmt: skip
    assert report["go_cache"]["saved_to"] is None
    warnings = _warnings(ran)
    assert warnings, ran.stderr
    for warning in warnings:
        assert warning.startswith(f"warning: --cache-to {ref}: `sh -c <"), warning
        assert f"in {helper}@sha256:" in warning, warning
        assert 'exec: "sh": executable file not found' in warning, warning
        assert warning.endswith("; the build stands, uncached"), warning
    assert "exit code:" not in ran.stderr


@pytest.mark.engine
def test_a_runner_saves_only_what_its_build_used(
    pipeline: PipelineRunner, testbed: Testbed, tmp_path: Path
) -> None:
    """Commit 1 saves; commit 2, on a fresh runner restored from it, saves its own entries:
    not commit 1's compiled main package, and about as much as commit 1 did."""
    source = tmp_path / "src"
    shutil.copytree(ROOT / "go-src", source)
    repository = f"ci/used-{unique()}"
    one, two = f"{testbed.registry}/{repository}:one", f"{testbed.registry}/{repository}:two"
    _, first = _build(pipeline, tmp_path, "one", "--cache-to", one, source=source)
    with (source / "helloworld.go").open("a") as file:
        file.write("\n// commit 2\nvar commit = 2\n")
    _, second = _build(pipeline, tmp_path, "two", "--cache-from", one, "--cache-to", two,
                       source=source)  # fmt: skip
    assert second["go_cache"]["started_from"] == "registry"
    layers = [_artifact(testbed, r["go_cache"]["saved_to"])["layers"][0] for r in (first, second)]
    before, after = (_members(testbed, repository, layer) for layer in layers)
    dropped = set(before) - set(after)
    assert dropped, "commit 1's own entries were saved again"
    assert set(after) - set(before), "commit 2 made no entries of its own"
    assert sum(after.values()) <= 1.1 * sum(before.values())
    assert len(after) <= 1.1 * len(before)


# Every file in the build cache volume made two hours old: as an hour after the run that filled
# it, whose entries Go will not touch again until it uses them.
AGE_ENTRIES = 'find "$GOCACHE" -type f -exec touch -c -d "@$(( $(date +%s) - 7200 ))" {} +'


@pytest.mark.engine
def test_a_build_from_the_engines_cache_keeps_the_cache_at_the_tag(
    pipeline: PipelineRunner, testbed: Testbed, engine_env: dict[str, str], tmp_path: Path
) -> None:
    """A CI job run again for the same commit, an hour later, on the same engine: its build
    comes from the engine's cache, no `go build` runs and no entry is used, so there is
    nothing to save. The cache at the tag stays as the first run saved it, not replaced by
    an almost empty one."""
    ref = f"{testbed.registry}/ci/again-{unique()}:main"
    _, first = _build(pipeline, tmp_path, "first", "--cache-to", ref, source=TINY)
    assert first["cache"] == "cold"
    saved = first["go_cache"]["saved_to"]
    assert saved
    assert not first["go_cache"]["kept"]
    settings = Settings(
        variant=Variant.MULTISTAGE, cache_to=parse_image_ref(ref, option="--cache-to")
    )
    in_session(
        engine_env,
        lambda: (
            cache_steps.caches("busybox:1.35", settings)
            .with_exec(["sh", "-c", AGE_ENTRIES])
            .stdout()
        ),
    )
    ran, again = _build(pipeline, tmp_path, "again", "--cache-to", ref, source=TINY)
    assert again["cache"] == "warm"
    assert again["go_cache"]["started_from"] == "engine"
    assert again["go_cache"]["kept"] is True
    assert again["go_cache"]["saved_to"] == saved
    assert again["go_cache"]["saved_size"] == first["go_cache"]["saved_size"]
    shown = " ".join(ran.stdout.split())  # as printed, lines wrapped at COLUMNS
    size = human_size(first["go_cache"]["saved_size"])
    assert f"; kept the {size} at {saved} (the build came from the engine's cache" in shown, shown
    name, _, digest = saved.partition("@")
    assert registry_digest(testbed, name) == digest


@pytest.mark.engine
def test_without_a_usable_cache_the_build_goes_on_with_one_warning(
    pipeline: PipelineRunner, testbed: Testbed, tmp_path: Path
) -> None:
    repository = f"ci/broken-{unique()}"
    missing = f"{testbed.registry}/{repository}:missing"
    corrupt = f"{testbed.registry}/{repository}:corrupt"
    closed = f"127.0.0.1:5009/{repository}:main"  # nothing listens there
    junk = tmp_path / "go-build.tar.gz"
    junk.write_bytes(gzip.compress(b"not a tar archive, though gzipped" * 100))
    _seed(corrupt, [(junk, BUILD_LAYER)])
    _, plain = _build(pipeline, tmp_path, "plain", source=TINY)
    cases = {
        "missing": (["--cache-from", missing], "does not exist"),
        "corrupt": (["--cache-from", corrupt], "does not unpack"),
        "from-unreachable": (["--cache-from", closed], "unreachable"),
        "to-unreachable": (["--cache-to", closed], "unreachable"),
    }
    for name, (args, cause) in cases.items():
        started = time.monotonic()
        ran, result = _build(pipeline, tmp_path, name, *args, source=TINY)
        (warning,) = _warnings(ran)
        assert cause in warning, (name, warning)
        assert args[1] in warning, (name, warning)
        assert result["go_cache"]["started_from"] == "none", name
        assert result["images"][0]["digest"] == plain["images"][0]["digest"], name
        assert (tmp_path / f"{name}.tar").is_file()
        assert time.monotonic() - started < 120, name


@pytest.mark.engine
def test_verify_catches_a_poisoned_cache(
    pipeline: PipelineRunner, testbed: Testbed, tmp_path: Path
) -> None:
    """A cache whose compiled main package was altered (same size: Go checks no more) builds
    a different binary; verify's second build, on fresh caches, shows it."""
    repository = f"ci/poison-{unique()}"
    good, bad = f"{testbed.registry}/{repository}:good", f"{testbed.registry}/{repository}:bad"
    _, first = _build(pipeline, tmp_path, "good", "--cache-to", good)
    layer = _artifact(testbed, first["go_cache"]["saved_to"])["layers"][0]
    url = f"http://{testbed.registry}/v2/{repository}/blobs/{layer['digest']}"
    poisoned = tmp_path / "go-build.tar.gz"
    changed = 0
    with tarfile.open(fileobj=io.BytesIO(requests.get(url, timeout=60).content)) as src, \
            tarfile.open(poisoned, "w:gz") as dst:  # fmt: skip
        for member in src.getmembers():
            data = src.extractfile(member).read() if member.isfile() else None  # type: ignore[union-attr]
            if data is not None and b"Hello " in data and member.name.endswith("-d"):
                data, changed = data.replace(b"Hello ", b"Jello "), changed + 1
            dst.addfile(member, io.BytesIO(data) if data is not None else None)
    assert changed, "no compiled entry holds the greeting"
    _seed(bad, [(poisoned, BUILD_LAYER)])
    ran = pipeline("verify", *BASES, "--cache-from", bad, "--json", str(tmp_path / "v.json"))
    assert ran.returncode == 1, ran.stdout + ran.stderr
    verdict = json.loads((tmp_path / "v.json").read_text())
    assert verdict["go_cache"]["started_from"] == "registry"
    assert not verdict["reproducible"]
    assert verdict["differences"]
    honest = pipeline("verify", *BASES, "--cache-from", good)
    assert honest.returncode == 0, honest.stdout + honest.stderr


def _module_cache_artifact(tmp: Path) -> Path:
    """The withdeps fixture's module (from the host's module cache) as a go-mod layer."""
    mods = Path(
        subprocess.run(
            ["go", "env", "GOMODCACHE"], capture_output=True, text=True, check=True
        ).stdout.strip()
    )
    env = {**os.environ, "GOPROXY": "off", "GOFLAGS": "-mod=mod"}
    subprocess.run(["go", "mod", "download", "github.com/google/uuid"],
                   cwd=ROOT / "tests/fixtures/withdeps", env=env, check=True)  # fmt: skip
    layer = tmp / "go-mod.tar.gz"
    with tarfile.open(layer, "w:gz") as tar:
        download = mods / "cache/download/github.com/google/uuid/@v"
        for path in sorted(download.glob("v1.6.0.*")):
            tar.add(path, arcname=str(path.relative_to(mods)))
    return layer


@pytest.mark.engine
def test_the_module_cache_travels_for_sources_not_vendored(
    pipeline: PipelineRunner, testbed: Testbed, tmp_path: Path
) -> None:
    """The engine's containers have no module proxy here: withdeps builds only if its
    module comes from the cache, and the cache it saves must carry it on."""
    repository = f"ci/mods-{unique()}"
    seed, saved = f"{testbed.registry}/{repository}:seed", f"{testbed.registry}/{repository}:ci"
    _seed(
        seed, [(_empty_layer(tmp_path), BUILD_LAYER), (_module_cache_artifact(tmp_path), MOD_LAYER)]
    )
    source = ROOT / "tests/fixtures/withdeps"
    _, first = _build(pipeline, tmp_path, "first", "--name", "withdeps", "--cache-from", seed,
                      "--cache-to", saved, source=source)  # fmt: skip
    assert first["go_cache"]["started_from"] == "registry"
    manifest = _artifact(testbed, first["go_cache"]["saved_to"])
    assert [la["mediaType"] for la in manifest["layers"]] == [BUILD_LAYER, MOD_LAYER]
    modules = _members(testbed, repository, manifest["layers"][1])
    assert "cache/download/github.com/google/uuid/@v/v1.6.0.zip" in modules, modules
    _, again = _build(pipeline, tmp_path, "again", "--name", "withdeps", "--cache-from", saved,
                      source=source)  # fmt: skip
    assert again["go_cache"]["started_from"] == "registry"
    assert again["images"][0]["digest"] == first["images"][0]["digest"]


# A helper image whose `sh` takes 5 s over the volumes' probe, and only over it (busybox's sh
# otherwise): it stands for an engine that runs the unpack of a downloaded cache first.
SLOW_PROBE_SH = """#!/bin/sh
case "$2" in *"then echo engine; else echo none"*) sleep 5 ;; esac
exec /bin/sh "$@"
"""


def _slow_probe_helper(testbed: Testbed, engine_env: dict[str, str]) -> str:
    """The helper image above, published to the plain registry: its reference by digest."""

    return in_session(
        engine_env,
        lambda: (
            dag.container()
            .from_("busybox:1.35")
            .with_new_file("/usr/local/bin/sh", SLOW_PROBE_SH, permissions=0o755)
            .with_env_variable("PATH", "/usr/local/bin:/bin")
            .publish(f"{testbed.registry}/ci/slow-probe-helper:{unique()}")
        ),
    )


@pytest.mark.engine
def test_an_unpack_quicker_than_the_probe_is_still_a_restore(
    pipeline: PipelineRunner, testbed: Testbed, engine_env: dict[str, str], tmp_path: Path
) -> None:
    """The probe of the volumes and the unpack of a downloaded cache both run in the helper
    image: the unpack waits for the probe's answer. Run at once, the unpack of a small cache
    filled the volumes first, the probe found them warm, and the run said it started from
    the engine's volumes, not from the registry (test_the_module_cache_travels... failed so
    in CI)."""
    helper = _slow_probe_helper(testbed, engine_env)
    repository = f"ci/quick-unpack-{unique()}"
    seed = f"{testbed.registry}/{repository}:seed"
    _seed(seed, [(_empty_layer(tmp_path), BUILD_LAYER)])
    ran, report = _build(
        pipeline, tmp_path, "quick", "--cache-from", seed, "--helper-image", helper, source=TINY
    )
    assert report["go_cache"]["started_from"] == "registry", ran.stderr
    assert _warnings(ran) == []


@pytest.mark.engine
def test_builder_says_its_compile_does_not_use_the_cache(
    pipeline: PipelineRunner, testbed: Testbed, tmp_path: Path
) -> None:
    ref = kept(testbed, "builder")
    ran = pipeline(
        "builder", "--no-run", *BASES, "--output", str(tmp_path / "b.tar"),
        "--json", str(tmp_path / "b.json"), "--cache-to", ref,
    )  # fmt: skip
    assert ran.returncode == 0, ran.stderr
    report = json.loads((tmp_path / "b.json").read_text())
    assert any("serves go vet and go test only" in n for n in report["notes"]), report["notes"]
    assert report["go_cache"]["saved_to"].startswith(f"{ref}-linux-amd64-go-")


@pytest.mark.engine
def test_a_build_that_fails_saves_nothing(
    pipeline: PipelineRunner, testbed: Testbed, tmp_path: Path
) -> None:
    """The save starts only once the compile has succeeded (then beside the export)."""
    source = tmp_path / "src"
    shutil.copytree(ROOT / "go-src", source)
    with (source / "helloworld.go").open("a") as file:
        file.write("\nfunc broken() { undefinedName() }\n")
    repository = kept(testbed, "failed").rpartition(":")[0]  # never pushed
    ran = pipeline(
        "multistage", "--no-test", "--no-run", *BASES, "--source", str(source),
        "--output", str(tmp_path / "failed.tar"), "--cache-to", f"{repository}:main",
    )  # fmt: skip
    assert ran.returncode == 1, ran.stderr
    assert "undefinedName" in ran.stderr
    assert "save cache" not in ran.stdout + ran.stderr
    assert not (tmp_path / "failed.tar").exists()
    tags = testbed.skopeo("list-tags", "--tls-verify=false", f"docker://{repository}")
    assert tags.returncode != 0, tags.stdout  # the repository does not exist: nothing pushed
    assert "404" in tags.stderr, tags.stderr
