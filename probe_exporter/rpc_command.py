"""`kamailio-probe-exporter rpc ADDRESS METHOD [PARAMS...]`: one BINRPC call, the reply as JSON.

A debugging aid in the spirit of `kamcmd`, through the exporter's own client: what it prints is
what the collectors see. Structs become JSON objects when their member names are unique and
present, else lists of [name, value] pairs (dispatcher.list repeats DEST); several top-level
values become a JSON list, a single one is printed as itself, none as null.

Exit status: 0 reply, 1 FAULT (`fault CODE: MESSAGE` on stderr), 2 bad usage or address,
connection failure, timeout or malformed reply, 141 stdout closed before the reply was printed
(`... | head`; what a shell reports for a command ended by SIGPIPE), quietly.
"""

import argparse
import asyncio
import json
import os
import re
import sys
from collections.abc import Sequence

from .binrpc.address import AddressError, parse_address
from .binrpc.client import connect
from .binrpc.codec import INT32_MAX, INT32_MIN, BinRpcError, Fault, Param, Struct, Value

__all__ = ["EXIT_STDOUT_CLOSED", "main", "parse_params", "to_json"]

DEFAULT_TIMEOUT = 5.0
EXIT_STDOUT_CLOSED = 141
_INT = re.compile(r"[+-]?[0-9]+")

EPILOG = """\
parameters: a parameter that looks like an integer is sent as INT, any other as STR.
  --str     send every following parameter as STR
  --int     send every following parameter as INT
  --auto    back to guessing
  s:VALUE   send VALUE as STR, i:VALUE as INT (kamcmd's prefixes; not after --str/--int)

examples:
  kamailio-probe-exporter rpc unix:/run/kamailio/kamailio_ctl core.uptime
  kamailio-probe-exporter rpc tcp:127.0.0.1:2046 stats.fetch shmem: core:
  kamailio-probe-exporter rpc tcp:127.0.0.1:2046 htable.get calls --str 12345
"""


class UsageError(ValueError):
    """A parameter that cannot be sent as asked."""


def parse_params(words: Sequence[str]) -> list[Param]:
    """Turns command-line words into typed BINRPC parameters (see EPILOG)."""
    params: list[Param] = []
    mode = "auto"
    for word in words:
        if word in ("--str", "--int", "--auto"):
            mode = word[2:]
        elif mode == "str":
            params.append(word)
        elif mode == "int":
            params.append(_as_int(word))
        elif word.startswith("s:"):
            params.append(word[2:])
        elif word.startswith("i:"):
            params.append(_as_int(word[2:]))
        elif _INT.fullmatch(word) and INT32_MIN <= int(word) <= INT32_MAX:
            params.append(int(word))
        else:
            params.append(word)
    return params


def _as_int(word: str) -> int:
    if not _INT.fullmatch(word):
        raise UsageError(f"not an integer: {word!r}")
    value = int(word)
    if not INT32_MIN <= value <= INT32_MAX:
        raise UsageError(f"{word} does not fit a 32-bit BINRPC INT; send it as a string")
    return value


def to_json(value: Value) -> object:
    """A JSON-ready form of a decoded value (structs as objects or [name, value] pairs)."""
    if isinstance(value, Struct):
        names = [name for name, _ in value]
        if None not in names and len(set(names)) == len(names):
            return {name: to_json(member) for name, member in value}
        return [[name, to_json(member)] for name, member in value]
    if isinstance(value, list):
        return [to_json(item) for item in value]
    if isinstance(value, bytes):
        return value.hex()
    return value


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="kamailio-probe-exporter rpc",
        description="Call one Kamailio RPC over BINRPC and print the reply as JSON.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=DEFAULT_TIMEOUT,
        metavar="SECONDS",
        help=f"connect and reply deadline (default {DEFAULT_TIMEOUT:g})",
    )
    parser.add_argument(
        "address",
        metavar="ADDRESS",
        help="ctl socket: tcp:HOST:PORT, udp:HOST:PORT, unix:/PATH, unixd:/PATH",
    )
    parser.add_argument("method", metavar="METHOD", help="e.g. core.uptime, stats.fetch")
    parser.add_argument(
        "params", metavar="PARAM", nargs=argparse.REMAINDER, help="parameters (see below)"
    )
    return parser


async def _call(address_text: str, method: str, params: list[Param], timeout: float) -> list[Value]:
    connection = await connect(parse_address(address_text), timeout=timeout)
    try:
        return await connection.call(method, *params)
    finally:
        await connection.close()


def main(argv: list[str]) -> int:
    """Runs the command; `argv` holds the words after `rpc`. Returns the exit status."""
    parser = _parser()
    args = parser.parse_args(argv)
    if not args.timeout > 0:
        parser.error("--timeout must be positive")
    try:
        params = parse_params(args.params)
        values = asyncio.run(_call(args.address, args.method, params, args.timeout))
    except UsageError as exc:
        parser.error(str(exc))
    except AddressError as exc:
        print(f"error: bad address: {exc}", file=sys.stderr)
        return 2
    except Fault as fault:
        print(f"fault {fault.code}: {fault.message}", file=sys.stderr)
        return 1
    except (BinRpcError, TimeoutError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    output = to_json(values[0]) if len(values) == 1 else [to_json(v) for v in values] or None
    try:
        json.dump(output, sys.stdout, indent=2, ensure_ascii=False)
        sys.stdout.write("\n")
        sys.stdout.flush()
    except BrokenPipeError:
        # The reader went away: what is still buffered must not fail again at exit.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_STDOUT_CLOSED
    return 0
