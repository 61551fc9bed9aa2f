"""Every input that ever broke a fuzz check (scripts/fuzz.sh), replayed through that check.

tests/regressions/TARGET/ holds the inputs, one per file, named after what they found; TARGET
is a key of fuzz_oracles.CHECKS (decoder, address, target, config). The seeds of the fuzzers
(the real captures among them) are replayed too, so the checks themselves stay honest.
"""

from __future__ import annotations

from pathlib import Path

import fuzz_oracles
import pytest
from fuzz_oracles import CHECKS, OracleFailure, check_decoder

from probe_exporter.binrpc.address import Address
from probe_exporter.config import ConfigError, parse_config

REGRESSIONS = Path(__file__).parent / "regressions"
CAPTURES = Path(__file__).parent / "fixtures" / "captures"
SAVED = sorted(path for path in REGRESSIONS.glob("*/*") if path.is_file())


def test_every_saved_input_names_a_known_check() -> None:
    assert SAVED, "tests/regressions/ is empty"
    assert {path.parent.name for path in SAVED} <= set(CHECKS)


@pytest.mark.parametrize("path", SAVED, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_saved_input_passes_its_check(path: Path) -> None:
    CHECKS[path.parent.name](path.read_bytes())


@pytest.mark.parametrize("path", sorted(CAPTURES.glob("*.bin")), ids=lambda p: p.name)
def test_real_captures_pass_the_decoder_check(path: Path) -> None:
    data = path.read_bytes()
    check_decoder(b"\x00\x00\x00\x00" + data)  # in one piece
    check_decoder(b"\x01\x01\x55\xaa" + data)  # cut in three, small packet limit


def test_deep_nesting_is_a_config_error() -> None:
    # tomllib recursed until RecursionError escaped parse_config (found by the config fuzzer).
    with pytest.raises(ConfigError, match="nested too deeply"):
        parse_config("a = " + "[" * 5000 + "]" * 5000)


def test_the_checks_let_bugs_through_to_the_fuzzer(monkeypatch: pytest.MonkeyPatch) -> None:
    # A check that swallowed unexpected errors, or passed anything, would hide every finding.
    def crashing_decoder(body: bytes) -> list[object]:
        raise IndexError("a decoder bug")

    monkeypatch.setattr(fuzz_oracles, "decode_values", crashing_decoder)
    with pytest.raises(IndexError):
        fuzz_oracles.check_body(b"\x10\x01")
    monkeypatch.setattr(
        fuzz_oracles, "parse_address", lambda text: Address("tcp", host="a b", port=1)
    )
    with pytest.raises(OracleFailure, match="whitespace"):
        fuzz_oracles.check_address(b"tcp:a:1")
