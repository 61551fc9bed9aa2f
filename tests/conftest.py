"""Shared fixtures: a real Kamailio (tests/kamailio_harness.py) and sipp traffic against it,
and the hostile peers (a fake Kamailio, an HTTP source).

When the kamailio or sipp binary is missing, tests that use them skip, telling how to install
them; with CI=true in the environment they fail instead, so CI cannot pass without them. The
same holds for the Kamailio versions run from chroots (scripts/kamailio-chroot.sh).

`kamailio_version` is the host's Kamailio unless a module parametrizes it (indirectly, with
scope="module") over kamailio_harness.VERSIONS: `kamailio` and `kamailio_factory` follow it.

Test tiers: every test is marked `hermetic` unless it is marked `real` or `kamailio` (itself, by
its class or by its module's `pytestmark`) or needs one of REAL_PART_FIXTURES, directly or
through another fixture; those are marked `real`. `pytest -m hermetic` runs the fast tier. The
tier cannot rot: while a hermetic test sets up and runs, starting any program other than this
Python interpreter (Kamailio, sipp, Prometheus, promtool, helm, podman, openssl, curl...)
raises, and the test fails with the program's name.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
from collections.abc import Callable, Generator, Iterator
from pathlib import Path
from typing import Any

import pytest
from hostile_binrpc import HostileServer
from hostile_http import HostileHttpSource
from kamailio_harness import (
    HOST,
    INSTALL_HINT,
    KamailioInstance,
    KamailioVersion,
    Sipp,
    find_binary,
    find_modules_dir,
    stop_all,
)


def _unavailable(message: str) -> None:
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


# Fixtures that start real parts: a test needing any of them (even indirectly) is `real`.
REAL_PART_FIXTURES = frozenset({"kamailio", "kamailio_factory", "sipp"})
_REAL_MARKERS = ("real", "kamailio")
_PYTHON = os.path.realpath(sys.executable)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        real = any(item.get_closest_marker(name) for name in _REAL_MARKERS) or bool(
            REAL_PART_FIXTURES.intersection(getattr(item, "fixturenames", ()))
        )
        item.add_marker(pytest.mark.real if real else pytest.mark.hermetic)


class HermeticTierError(RuntimeError):
    """A test of the hermetic tier started an outside program."""


class _ProgramGuard:
    """An audit hook (sys.addaudithook) that refuses to start programs other than this Python
    while `test` names a running hermetic test; hooks cannot be removed, so it stays idle
    between hermetic tests."""

    def __init__(self) -> None:
        self.test: str | None = None
        self.refused: list[str] = []

    def __call__(self, event: str, args: tuple[object, ...]) -> None:
        if self.test is None:
            return
        # Popen's event names the program it execs (the shell for shell=True).
        if event in ("subprocess.Popen", "os.posix_spawn", "os.exec", "os.spawn"):
            executable = args[0]
        elif event == "os.system":
            executable = str(args[0]).split(" ", 1)[0]
        else:
            return
        if not isinstance(executable, str | bytes | os.PathLike):
            executable = str(executable)
        program = os.fsdecode(executable)
        found = shutil.which(program) if os.sep not in program else program
        if found is not None and os.path.realpath(found) == _PYTHON:
            return
        self.refused.append(program)
        raise HermeticTierError(
            f"{self.test} is in the hermetic tier but starts {program!r}: mark it "
            "pytest.mark.real (or give it a fixture of conftest.REAL_PART_FIXTURES)"
        )

    @contextlib.contextmanager
    def active_for(self, item: pytest.Item) -> Iterator[None]:
        if item.get_closest_marker("hermetic") is None:
            yield
            return
        self.test, self.refused = item.nodeid, []
        try:
            yield
        finally:
            self.test = None
        # Also when the test caught the error itself.
        if self.refused:
            pytest.fail(f"hermetic test started {self.refused}: mark it real", pytrace=False)


_PROGRAM_GUARD = _ProgramGuard()
sys.addaudithook(_PROGRAM_GUARD)


# Setup and call only: a module's real fixture may be torn down after its last test, which
# can be hermetic.
@pytest.hookimpl(wrapper=True)
def pytest_runtest_setup(item: pytest.Item) -> Generator[None, None, None]:
    with _PROGRAM_GUARD.active_for(item):
        return (yield)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Generator[None, None, None]:
    with _PROGRAM_GUARD.active_for(item):
        return (yield)


def require_binary(name: str) -> None:
    """Skips (or, with CI=true, fails) the current test when `name` is not installed."""
    missing = find_binary(name) is None or (name == "kamailio" and find_modules_dir() is None)
    if missing:
        _unavailable(f"{name} is not installed: {INSTALL_HINT}")


def require_version(version: KamailioVersion) -> None:
    """Skips (or, with CI=true, fails) the current test when `version` cannot be started."""
    missing = version.missing()
    if missing is not None:
        _unavailable(missing)


@pytest.fixture(scope="module")
def kamailio_version(request: pytest.FixtureRequest) -> KamailioVersion:
    """The Kamailio version of `kamailio` and `kamailio_factory` (the host's by default)."""
    version: KamailioVersion = getattr(request, "param", HOST)
    return version


@pytest.fixture(scope="session", autouse=True)
def _no_kamailio_outlives_the_test_run() -> Iterator[None]:
    yield
    stop_all()


@pytest.fixture(scope="module")
def kamailio(
    tmp_path_factory: pytest.TempPathFactory, kamailio_version: KamailioVersion
) -> Iterator[KamailioInstance]:
    """One Kamailio shared by the tests of a module (do not restart or exhaust it)."""
    require_version(kamailio_version)
    instance = KamailioInstance(tmp_path_factory.mktemp("kamailio"), kamailio_version)
    try:
        instance.start()
        yield instance
    finally:
        instance.stop()


@pytest.fixture
def kamailio_factory(
    tmp_path_factory: pytest.TempPathFactory, kamailio_version: KamailioVersion
) -> Iterator[Callable[..., KamailioInstance]]:
    """Starts fresh Kamailio instances on demand (keyword arguments go to KamailioInstance:
    uac, dmq, dmq_notification_port, shm_mb); all are stopped at teardown."""
    require_version(kamailio_version)
    instances: list[KamailioInstance] = []

    def start(**options: Any) -> KamailioInstance:
        instance = KamailioInstance(
            tmp_path_factory.mktemp("kamailio"), kamailio_version, **options
        )
        instances.append(instance)
        instance.start()
        return instance

    try:
        yield start
    finally:
        for instance in instances:
            instance.stop()


@pytest.fixture(scope="module")
def hostile(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HostileServer]:
    """A fake Kamailio whose listeners misbehave on purpose (tests/hostile_binrpc.py)."""
    server = HostileServer(tmp_path_factory.mktemp("hostile"))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def http_source() -> Iterator[HostileHttpSource]:
    """An HTTP server of metrics pages, good and bad ones (tests/hostile_http.py)."""
    server = HostileHttpSource()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def sipp(kamailio: KamailioInstance, tmp_path: Path) -> Sipp:
    """Bounded sipp runs (register, calls, busy) against the module's Kamailio."""
    require_binary("sipp")
    return Sipp(kamailio, tmp_path / "sipp")
