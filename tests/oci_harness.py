"""Builds the project's image with podman and runs it, on a machine that reaches no registry.

podman's settings live in a directory of the test's (CONTAINERS_CONF, CONTAINERS_STORAGE_CONF),
never in /etc/containers: vfs storage, runc, ulimits the host allows, no network by default.
Containers get `--network host` (to reach a Kamailio the tests start on 127.0.0.1) or `none`,
never podman's bridge, which would turn on IP forwarding and add firewall rules to the host.

The base image cannot be pulled, so `local_base()` makes one from Debian packages of the release
the machine runs (debootstrap --variant=minbase with python3-venv, slimmed like
debian:bookworm-slim), from the mirror in the machine's apt sources. The Dockerfile's header
lists how it differs from the real base. Storage and base live in CACHE, outside the checkout,
so that later runs reuse the base and the dependency layer (delete CACHE to start afresh).
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import resource
import shutil
import subprocess
import tarfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import pytest

CACHE = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "kamailio-probe-exporter"
BASE_IMAGE = "localhost/kamailio-probe-exporter-test-base"
INSTALL_HINT = "apt-get install -y podman buildah runc debootstrap uidmap (./scripts/test.sh does)"
CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
# Slimmed away like debian:bookworm-slim does (its dpkg excludes): documentation and translations.
SLIMMED = ("usr/share/doc", "usr/share/man", "usr/share/info", "usr/share/locale")

STORAGE_CONF = """\
[storage]
driver = "vfs"
graphroot = "{cache}/storage"
runroot = "{cache}/runroot"
"""
# default_ulimits: without CAP_SYS_RESOURCE the runtime may not raise limits above the host's.
# runc: crun refuses this host's hybrid cgroup layout. netns none: no network unless asked.
CONTAINERS_CONF = """\
[containers]
default_ulimits = ["nofile={nofile}:{nofile}", "nproc={nproc}:{nproc}"]
log_driver = "k8s-file"
netns = "none"
[engine]
cgroup_manager = "cgroupfs"
events_logger = "file"
runtime = "runc"
"""


def require_podman() -> None:
    """Skips (fails with CI=true) unless podman, runc and debootstrap are there and we are root."""
    missing = [tool for tool in ("podman", "runc", "debootstrap") if shutil.which(tool) is None]
    message = ""
    if missing:
        message = f"{', '.join(missing)} not installed: {INSTALL_HINT}"
    elif os.geteuid() != 0:
        message = "building the image needs root (debootstrap, podman's vfs storage)"
    if message:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message, pytrace=False)
        pytest.skip(message)


def podman_env(config_dir: Path) -> dict[str, str]:
    """The environment that points podman and buildah at settings written into `config_dir`."""
    nofile = min(resource.getrlimit(resource.RLIMIT_NOFILE)[1], 20000)
    nproc = min(resource.getrlimit(resource.RLIMIT_NPROC)[1], 32768)
    (config_dir / "storage.conf").write_text(STORAGE_CONF.format(cache=CACHE))
    (config_dir / "containers.conf").write_text(CONTAINERS_CONF.format(nofile=nofile, nproc=nproc))
    return {
        **os.environ,
        "CONTAINERS_CONF": str(config_dir / "containers.conf"),
        "CONTAINERS_STORAGE_CONF": str(config_dir / "storage.conf"),
        "BUILDAH_ISOLATION": "chroot",
    }


def podman(
    env: dict[str, str], *args: str, timeout: float = 120, check: bool = True
) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        ["podman", *args], env=env, capture_output=True, text=True, timeout=timeout, check=False
    )
    if check and result.returncode != 0:
        raise AssertionError(f"podman {' '.join(args)} failed:\n{result.stdout}{result.stderr}")
    return result


def os_release() -> dict[str, str]:
    lines = Path("/etc/os-release").read_text().splitlines()
    return {key: value.strip('"') for key, _, value in (line.partition("=") for line in lines)}


def debian_mirror(codename: str) -> str:
    """The first mirror in the machine's apt sources that serves `codename`."""
    sources = Path("/etc/apt/sources.list.d")
    for path in sorted(sources.glob("*.sources")):
        for stanza in path.read_text().split("\n\n"):
            fields = {
                key.strip(): value.strip()
                for key, _, value in (line.partition(":") for line in stanza.splitlines())
                if not key.startswith("#")
            }
            if codename in fields.get("Suites", "").split() and fields.get("URIs"):
                return fields["URIs"].split()[0]
    for path in [Path("/etc/apt/sources.list"), *sorted(sources.glob("*.list"))]:
        if path.exists():
            for line in path.read_text().splitlines():
                match = re.match(r"deb\s+(?:\[[^]]*\]\s+)?(\S+)\s+(\S+)", line)
                if match and match.group(2) == codename:
                    return match.group(1)
    raise AssertionError(f"no apt source for {codename} in /etc/apt: cannot debootstrap")


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    """Another test run on the machine may be building the base at the same time."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def local_base(env: dict[str, str]) -> str:
    """The test base image's name; made from Debian packages on first use (about a minute)."""
    codename = os_release()["VERSION_CODENAME"]
    name = f"{BASE_IMAGE}:{codename}"
    with _locked(CACHE / "base.lock"):
        if podman(env, "image", "exists", name, check=False).returncode == 0:
            return name
        rootfs = CACHE / f"rootfs-{codename}"
        shutil.rmtree(rootfs, ignore_errors=True)
        subprocess.run(
            [
                "debootstrap",
                "--variant=minbase",
                "--include=python3-venv",
                codename,
                str(rootfs),
                debian_mirror(codename),
            ],
            check=True,
            capture_output=True,
            timeout=900,
        )
        for directory in (*SLIMMED, "var/lib/apt/lists", "var/cache/apt"):
            shutil.rmtree(rootfs / directory, ignore_errors=True)
        for link in ("python", "python3"):
            (rootfs / "usr/local/bin" / link).symlink_to("/usr/bin/python3")
        archive = CACHE / f"rootfs-{codename}.tar"
        with tarfile.open(archive, "w") as tar:
            tar.add(rootfs, arcname=".")
        shutil.rmtree(rootfs)
        changes = [
            "ENV PATH=/usr/local/bin:/usr/local/sbin:/usr/sbin:/usr/bin:/sbin:/bin",
            "ENV LANG=C.UTF-8",
            'CMD ["python3"]',
        ]
        podman(
            env,
            "import",
            *(f"--change={change}" for change in changes),
            str(archive),
            name,
            timeout=600,
        )
        archive.unlink()
    return name


def context_digest(context: Path, files: Sequence[str], *inputs: str) -> str:
    """sha256 of the build's inputs: the files the Dockerfile copies, build arguments, base."""
    digest = hashlib.sha256("\0".join(inputs).encode())
    for name in files:
        paths = [context / name] if (context / name).is_file() else (context / name).rglob("*")
        for path in sorted(p for p in paths if p.is_file() and "__pycache__" not in p.parts):
            digest.update(str(path.relative_to(context)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def build_image(
    env: dict[str, str], context: Path, tag: str, base: str, build_args: dict[str, str]
) -> bool:
    """Builds the Dockerfile in docker format (keeping its HEALTHCHECK) from the local base.

    Even with every layer cached, a vfs build copies whole file systems for a minute or two:
    when nothing the build reads changed since the image in storage was built, it is kept
    (False).
    """
    files = ["Dockerfile", "requirements.lock", "requirements-build.lock", "pyproject.toml"]
    files += ["README.md", "LICENSE", "probe_exporter"]
    exists = podman(env, "image", "exists", tag, check=False).returncode == 0
    previous = image_id(env, tag) if exists else ""
    inputs = [image_id(env, base), *(f"{k}={v}" for k, v in sorted(build_args.items()))]
    digest = context_digest(context, files, *inputs)
    stamp = CACHE / f"{tag.replace('/', '_').replace(':', '_')}.built"
    if previous and stamp.exists() and stamp.read_text() == f"{digest} {previous}":
        return False
    args = ["--build-arg", f"PYTHON_IMAGE={base}"]
    for key, value in build_args.items():
        args += ["--build-arg", f"{key}={value}"]
    if os.environ.get("PIP_INDEX_URL"):
        args += ["--build-arg", f"PIP_INDEX_URL={os.environ['PIP_INDEX_URL']}"]
    if CA_BUNDLE.exists():
        args += ["--secret", f"id=ca,src={CA_BUNDLE}"]
    podman(
        env,
        "build",
        "--format=docker",
        "--pull=never",
        "--network=host",  # the build stage downloads the locked wheels
        "--layers",
        *args,
        "--tag",
        tag,
        str(context),
        timeout=1200,
    )
    # A rebuild leaves the previous image untagged, and vfs keeps a full copy of every layer:
    # remove it (not with `image prune`, which would drop the cached dependency layer too).
    if previous and previous != image_id(env, tag):
        podman(env, "rmi", previous, check=False)
    stamp.write_text(f"{digest} {image_id(env, tag)}")
    return True


def image_id(env: dict[str, str], name: str) -> str:
    return podman(env, "image", "inspect", "--format={{.Id}}", name).stdout.strip()


def inspect(env: dict[str, str], kind: str, name: str) -> dict[str, object]:
    (found,) = json.loads(podman(env, kind, "inspect", name).stdout)
    return dict(found)


def remove_container(env: dict[str, str], name: str) -> None:
    podman(env, "rm", "--force", "--time", "0", name, check=False)


def run(
    env: dict[str, str], image: str, *args: str, options: Sequence[str] = (), timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """`podman run --rm` of the image without network, its arguments after the image name."""
    return podman(
        env, "run", "--rm", "--network=none", *options, image, *args, timeout=timeout, check=False
    )
