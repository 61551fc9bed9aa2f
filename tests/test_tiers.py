"""The test tiers of tests/conftest.py: every test is `hermetic` or `real`, the hermetic ones need
no real part, and while one runs, starting an outside program fails it."""

from __future__ import annotations

import sys

import conftest
import pytest


def test_every_test_is_in_exactly_one_tier(request: pytest.FixtureRequest) -> None:
    items = request.session.items
    assert request.node in items
    for item in items:
        tiers = {name for name in ("hermetic", "real") if item.get_closest_marker(name)}
        assert len(tiers) == 1, (item.nodeid, tiers)


def test_no_hermetic_test_needs_a_real_part(request: pytest.FixtureRequest) -> None:
    hermetic = [i for i in request.session.items if i.get_closest_marker("hermetic")]
    assert request.node in hermetic
    for item in hermetic:
        assert not conftest.REAL_PART_FIXTURES.intersection(getattr(item, "fixturenames", ()))
        assert item.get_closest_marker("kamailio") is None, item.nodeid


def test_the_guard_watches_this_hermetic_test(request: pytest.FixtureRequest) -> None:
    assert conftest._PROGRAM_GUARD.test == request.node.nodeid


@pytest.mark.parametrize(
    ("event", "args"),
    [
        ("subprocess.Popen", ("/usr/sbin/kamailio", ["kamailio", "-v"], None, None)),
        ("subprocess.Popen", (b"promtool", [b"promtool"], None, None)),
        ("subprocess.Popen", ("/bin/sh", ["/bin/sh", "-c", "helm version"], None, None)),
        ("os.posix_spawn", ("/usr/bin/podman", ["podman"], {})),
        ("os.exec", ("/usr/bin/curl", ["curl"], None)),
        ("os.system", (b"sipp -v",)),
    ],
)
def test_the_guard_refuses_outside_programs(event: str, args: tuple[object, ...]) -> None:
    guard = conftest._ProgramGuard()  # a fresh one: not installed, so nothing runs
    guard(event, args)  # idle outside a hermetic test
    guard.test = "t"
    with pytest.raises(conftest.HermeticTierError, match=r"mark it pytest\.mark\.real"):
        guard(event, args)
    assert len(guard.refused) == 1


def test_the_guard_lets_this_python_run() -> None:
    guard = conftest._ProgramGuard()
    guard.test = "t"
    guard("subprocess.Popen", (sys.executable, [sys.executable, "-c", "pass"], None, None))
    guard("open", ("/etc/hostname", "r", 0))  # other audit events pass
    assert guard.refused == []
