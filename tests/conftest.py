"""Shared fixtures: a real Kamailio (tests/kamailio_harness.py) and sipp traffic against it.

When the kamailio or sipp binary is missing, tests that use them skip, telling how to install
them; with CI=true in the environment they fail instead, so CI cannot pass without them.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from kamailio_harness import (
    INSTALL_HINT,
    KamailioInstance,
    Sipp,
    find_binary,
    find_modules_dir,
    stop_all,
)


def require_binary(name: str) -> None:
    """Skips (or, with CI=true, fails) the current test when `name` is not installed."""
    missing = find_binary(name) is None or (name == "kamailio" and find_modules_dir() is None)
    if not missing:
        return
    message = f"{name} is not installed: {INSTALL_HINT}"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


@pytest.fixture(scope="session", autouse=True)
def _no_kamailio_outlives_the_test_run() -> Iterator[None]:
    yield
    stop_all()


@pytest.fixture(scope="module")
def kamailio(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KamailioInstance]:
    """One Kamailio shared by the tests of a module (do not restart or exhaust it)."""
    require_binary("kamailio")
    instance = KamailioInstance(tmp_path_factory.mktemp("kamailio"))
    try:
        instance.start()
        yield instance
    finally:
        instance.stop()


@pytest.fixture
def kamailio_factory(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Callable[[], KamailioInstance]]:
    """Starts fresh Kamailio instances on demand; all are stopped at teardown."""
    require_binary("kamailio")
    instances: list[KamailioInstance] = []

    def start() -> KamailioInstance:
        instance = KamailioInstance(tmp_path_factory.mktemp("kamailio"))
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
