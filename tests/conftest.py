"""Shared fixtures: a real Kamailio (tests/kamailio_harness.py) and sipp traffic against it.

When the kamailio or sipp binary is missing, tests that use them skip, telling how to install
them; with CI=true in the environment they fail instead, so CI cannot pass without them. The
same holds for the Kamailio versions run from chroots (scripts/kamailio-chroot.sh).

`kamailio_version` is the host's Kamailio unless a module parametrizes it (indirectly, with
scope="module") over kamailio_harness.VERSIONS: `kamailio` and `kamailio_factory` follow it.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
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


@pytest.fixture
def sipp(kamailio: KamailioInstance, tmp_path: Path) -> Sipp:
    """Bounded sipp runs (register, calls, busy) against the module's Kamailio."""
    require_binary("sipp")
    return Sipp(kamailio, tmp_path / "sipp")
