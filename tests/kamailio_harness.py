"""A real Kamailio (and sipp traffic) for tests and benchmarks, on free loopback ports.

KamailioInstance renders tests/kamailio/kamailio.cfg.tmpl into its own directory, starts
`kamailio -DD -E` as a child in its own process group and waits until a real RPC answers.
stop() sends SIGTERM by PID (and to the process group if it lingers), SIGKILL to the group after
5 s; an atexit guard and the parent-death signal make sure no Kamailio outlives the Python process
that started it.

VERSIONS are the Kamailios the tests run: the host's own (Debian 12: 5.6) and Debian chroots
built by scripts/kamailio-chroot.sh (trixie: 6.0, sid: 6.1). A chroot's Kamailio runs as
`chroot ROOT kamailio` (root only; chroot execs Kamailio, so the PID is Kamailio's), with its
directory inside the chroot: the unix ctl socket is reachable from the host at ROOT + its path.
A unixd client cannot be answered across the chroot (Kamailio replies to the client's socket
path), so tests of chroot versions use tcp, udp or unix.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import ctypes
import glob
import itertools
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

from probe_exporter.binrpc.address import parse_address
from probe_exporter.binrpc.client import connect
from probe_exporter.binrpc.codec import BinRpcError

TEMPLATE_DIR = Path(__file__).resolve().parent / "kamailio"
SCENARIO_DIR = TEMPLATE_DIR / "scenarios"
INSTALL_HINT = "apt-get install -y kamailio sip-tester"
CHROOT_SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "kamailio-chroot.sh"
CHROOT_HINT = "sudo scripts/kamailio-chroot.sh (./scripts/test.sh runs it as root)"
# kamailio and kamcmd live in sbin, which is not on every user's PATH.
_SBIN_PATH = "/usr/local/sbin:/usr/sbin:/sbin"
_MODULE_DIR_PATTERNS = (
    "/usr/lib/*/kamailio/modules",
    "/usr/lib64/kamailio/modules",
    "/usr/lib/kamailio/modules",
    "/usr/local/lib*/kamailio/modules",
)
# Kamailio's own limit for unix socket paths (UNIX_PATH_MAX in its ctl module).
_MAX_SOCKET_PATH = 104
STOP_GRACE = 5.0

# pid -> instance, for the atexit guard.
_RUNNING: dict[int, KamailioInstance] = {}


class HarnessError(RuntimeError):
    """Kamailio or sipp did not do what the harness needs (the message carries its log tail)."""


def chroot_cache() -> Path:
    """Where scripts/kamailio-chroot.sh keeps its chroots (the same rule as the script)."""
    if os.environ.get("KAMAILIO_CHROOT_CACHE"):
        return Path(os.environ["KAMAILIO_CHROOT_CACHE"])
    if os.geteuid() == 0:
        return Path("/var/cache/kamailio-probe-exporter/chroots")
    cache_home = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache_home, "kamailio-probe-exporter", "chroots")


@dataclass(frozen=True)
class KamailioVersion:
    """One Kamailio version the tests run: the host's own (suite None) or a Debian chroot's."""

    name: str  # major.minor, the test id
    suite: str | None = None

    def __str__(self) -> str:
        return self.name

    @property
    def root(self) -> Path | None:
        return None if self.suite is None else chroot_cache() / self.suite

    def missing(self) -> str | None:
        """Why this version cannot be started here (with the command that sets it up), or None."""
        if self.root is None:
            if find_binary("kamailio") is None or find_modules_dir() is None:
                return f"kamailio is not installed: {INSTALL_HINT}"
            return None
        if not (self.root / "usr/sbin/kamailio").exists():
            return f"no {self.suite} chroot with Kamailio {self.name} in {self.root}: {CHROOT_HINT}"
        if os.geteuid() != 0:
            return f"Kamailio {self.name} runs in a chroot: the tests must run as root"
        return None


HOST = KamailioVersion("5.6")
VERSIONS = (HOST, KamailioVersion("6.0", "trixie"), KamailioVersion("6.1", "sid"))


def find_binary(name: str) -> str | None:
    return shutil.which(name) or shutil.which(name, path=_SBIN_PATH)


def find_modules_dir(root: Path | None = None) -> Path | None:
    """Kamailio's module directory, as seen from the host (under `root` for a chroot)."""
    prefix = "" if root is None else str(root)
    for pattern in _MODULE_DIR_PATTERNS:
        for candidate in sorted(glob.glob(prefix + pattern)):
            if Path(candidate, "ctl.so").exists():
                return Path(candidate)
    return None


def _ephemeral_low() -> int:
    """The first port of the kernel's ephemeral range (net.ipv4.ip_local_port_range)."""
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


# Ports handed out in this process: an instance keeps its ports across restarts, and two
# instances of one test are given distinct ones even before either has bound them.
_HANDED_OUT: set[int] = set()


def _candidate_ports() -> Iterator[int]:
    """Ports below the ephemeral range first: the kernel gives ephemeral ports to outgoing
    connections (the exporter's, Prometheus'...), and one of those could take a port between
    its choice here and Kamailio's bind ("Address already in use"). Then any free port."""
    low = _ephemeral_low()
    if low > 12288:
        for _ in range(200):
            yield random.randrange(10240, low)
    yield from itertools.repeat(0, 100)


def _bound(kind: socket.SocketKind, port: int) -> socket.socket | None:
    sock = socket.socket(socket.AF_INET, kind)
    try:
        sock.bind(("127.0.0.1", port))
    except OSError:
        sock.close()
        return None
    return sock


def free_ports(*kinds: str) -> list[int]:
    """Free 127.0.0.1 ports, one per kind: "tcp", "udp" or "both" (the same number on both).

    All sockets stay bound until every port is chosen, so the ports are distinct.
    """
    held: list[socket.socket] = []
    ports: list[int] = []
    try:
        for kind in kinds:
            types = {
                "tcp": (socket.SOCK_STREAM,),
                "udp": (socket.SOCK_DGRAM,),
                "both": (socket.SOCK_STREAM, socket.SOCK_DGRAM),
            }[kind]
            for candidate in _candidate_ports():
                if candidate in _HANDED_OUT:
                    continue
                first = _bound(types[0], candidate)
                if first is None:
                    continue
                held.append(first)
                port: int = first.getsockname()[1]
                if port in _HANDED_OUT:
                    continue
                others = [_bound(other, port) for other in types[1:]]
                held.extend(sock for sock in others if sock is not None)
                if None not in others:
                    break
            else:
                raise HarnessError(f"no free {kind} port")
            ports.append(port)
            _HANDED_OUT.add(port)
    finally:
        for sock in held:
            sock.close()
    return ports


def _set_parent_death_signal() -> None:
    """Runs in the child before exec: SIGTERM to Kamailio if the process that started it dies."""
    pr_set_pdeathsig = 1
    ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM, 0, 0, 0)


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except (ProcessLookupError, PermissionError):  # gone, or the id now belongs to someone else
        return False
    return True


def _run_in_own_loop(coroutine_function: Callable[[], Coroutine[Any, Any, None]]) -> None:
    """Runs an async function to completion in a fresh loop on a helper thread.

    The harness is called from plain and from async tests alike; a thread keeps its loop apart
    from a test's running loop.
    """
    errors: list[BaseException] = []

    def target() -> None:
        try:
            asyncio.run(coroutine_function())
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=target, name="kamailio-ready")
    thread.start()
    thread.join()
    if errors:
        raise errors[0]


class KamailioInstance:
    """One Kamailio on 127.0.0.1 with every ctl transport, SIP, xhttp_prom and dispatcher.

    Attributes: `tcp`, `unix`, `udp`, `unixd` (BINRPC address strings), `sip_port` (udp+tcp),
    `tls_port` (listening only when `tls` is True), `http_port` and `metrics_url` (xhttp_prom),
    `dispatcher_live_port` (set 1, answered by a sipp UAS during Sipp.calls),
    `dispatcher_dead_port` (set 1, probed, nothing listens), `rtpengine_ng_port` (nothing listens
    unless a test starts rtpengine there), `pid`, `workdir`, `config_path`, `log_path`.
    restart() keeps the ports and the directory.

    `version` picks the host's Kamailio or a chroot's (whose directory is always its own, inside
    the chroot). `uac` loads uac with three outbound registrations (peer1 to this Kamailio,
    peer2 to the dead dispatcher port, peer3 disabled). `dmq` loads dmq with this Kamailio as
    server and `dmq_notification_port` (default: its own SIP port, so that it lists itself
    twice) as notification peer. `shm_mb` is Kamailio's -m.
    """

    def __init__(
        self,
        workdir: Path | str | None = None,
        version: KamailioVersion = HOST,
        *,
        uac: bool = False,
        dmq: bool = False,
        dmq_notification_port: int | None = None,
        shm_mb: int = 64,
        children: int = 2,
        extra_destinations: int = 0,
    ) -> None:
        missing = version.missing()
        if missing is not None:
            raise HarnessError(missing)
        self.version = version
        self.root = version.root
        modules = find_modules_dir(self.root)
        if modules is None:
            raise HarnessError(f"no Kamailio modules for {version.name}")
        if self.root is None:
            binary = find_binary("kamailio")
            assert binary is not None  # version.missing() checked it
            self.command = [binary]
        else:
            self.command = ["chroot", str(self.root), "/usr/sbin/kamailio"]
            # The directory must be inside the chroot for Kamailio to see it.
            workdir = None
        self.modules_dir = modules
        self.uac = uac
        self.dmq = dmq
        self.shm_mb = shm_mb
        self.children = children  # SIP worker processes (each has its pkg.stats entry)
        # dispatcher set 2: destinations where nothing listens, not probed (state AX)
        self.extra_destinations = extra_destinations
        self._owns_workdir = workdir is None
        scratch = None if self.root is None else str(self.root / "tmp")
        self.workdir = (
            Path(tempfile.mkdtemp(prefix="kamailio-", dir=scratch))
            if workdir is None
            else Path(workdir)
        )
        self.rundir = self.workdir / "run"
        self.rundir.mkdir(parents=True, exist_ok=True)
        self.config_path = self.workdir / "kamailio.cfg"
        self.log_path = self.workdir / "kamailio.log"
        self.pid_path = self.rundir / "kamailio.pid"
        self.unix_path = self.rundir / "kamailio_ctl"
        self.unixd_path = self.rundir / "kamailio_ctl_dgram"
        if len(str(self.unixd_path)) > _MAX_SOCKET_PATH:
            raise HarnessError(f"directory path too long for a unix socket: {self.workdir}")
        self.tls = (modules / "tls.so").exists()
        (
            self.sip_port,
            self.tls_port,
            self.http_port,
            self.ctl_tcp_port,
            self.ctl_udp_port,
            self.rtpengine_ng_port,
            self.dispatcher_live_port,
            self.dispatcher_dead_port,
        ) = free_ports("both", "tcp", "tcp", "tcp", "udp", "udp", "udp", "udp")
        self.dmq_notification_port = dmq_notification_port or self.sip_port
        self.process: subprocess.Popen[bytes] | None = None
        self._render()

    # -- addresses -------------------------------------------------------------------------
    @property
    def tcp(self) -> str:
        return f"tcp:127.0.0.1:{self.ctl_tcp_port}"

    @property
    def udp(self) -> str:
        return f"udp:127.0.0.1:{self.ctl_udp_port}"

    @property
    def unix(self) -> str:
        return f"unix:{self.unix_path}"

    @property
    def unixd(self) -> str:
        return f"unixd:{self.unixd_path}"

    @property
    def metrics_url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}/metrics"

    @property
    def pid(self) -> int:
        if self.process is None or self.process.poll() is not None:
            raise HarnessError("kamailio is not running")
        return self.process.pid

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    # -- lifecycle -------------------------------------------------------------------------
    def inside(self, path: Path) -> Path:
        """A host path as Kamailio sees it (inside its chroot)."""
        return path if self.root is None else Path("/", path.relative_to(self.root))

    def _render(self) -> None:
        tls_dir = self.workdir / "tls"
        uac_db = self.workdir / "uac_db"
        values = {
            "SIP_PORT": self.sip_port,
            "TLS_PORT": self.tls_port,
            "HTTP_PORT": self.http_port,
            "CTL_TCP_PORT": self.ctl_tcp_port,
            "CTL_UDP_PORT": self.ctl_udp_port,
            "RTPENGINE_NG_PORT": self.rtpengine_ng_port,
            "RUNDIR": self.inside(self.rundir),
            "MODULES_DIR": self.inside(self.modules_dir),
            "DISPATCHER_LIST": self.inside(self.workdir / "dispatcher.list"),
            "DISPATCHER_LIVE_PORT": self.dispatcher_live_port,
            "DISPATCHER_DEAD_PORT": self.dispatcher_dead_port,
            "TLS_CFG": self.inside(self.workdir / "tls.cfg"),
            "TLS_DIR": self.inside(tls_dir),
            "TLS_DEFINE": "#!define WITH_TLS" if self.tls else "# tls.so is not installed",
            "UAC_DEFINE": "#!define WITH_UAC" if self.uac else "# uac: not loaded",
            "UAC_DB_DIR": self.inside(uac_db),
            "DMQ_DEFINE": "#!define WITH_DMQ" if self.dmq else "# dmq: not loaded",
            "DMQ_NOTIFICATION_PORT": self.dmq_notification_port,
            "CHILDREN": self.children,
        }
        rendered = [("kamailio.cfg.tmpl", self.config_path)]
        rendered.append(("dispatcher.list.tmpl", self.workdir / "dispatcher.list"))
        if self.uac:
            uac_db.mkdir(exist_ok=True)
            rendered.append(("uacreg.tmpl", uac_db / "uacreg"))
            rendered.append(("uac_version.tmpl", uac_db / "version"))
        if self.tls:
            rendered.append(("tls.cfg.tmpl", self.workdir / "tls.cfg"))
            tls_dir.mkdir(exist_ok=True)
            for name in ("cert.pem", "key.pem"):
                shutil.copyfile(TEMPLATE_DIR / "tls" / name, tls_dir / name)
            (tls_dir / "key.pem").chmod(0o600)
        for template, target in rendered:
            text = (TEMPLATE_DIR / template).read_text()
            for name, value in values.items():
                text = text.replace(f"@@{name}@@", str(value))
            leftover = re.search(r"@@[A-Z_]+@@", text)
            if leftover:
                raise HarnessError(f"unreplaced token {leftover.group()} in {template}")
            target.write_text(text)
        if self.extra_destinations:
            ports = free_ports(*["udp"] * self.extra_destinations)
            with (self.workdir / "dispatcher.list").open("a") as listing:
                for index, port in enumerate(ports):
                    listing.write(f"2 sip:127.0.0.1:{port} 0 0 duid=extra{index}\n")

    def start(self, timeout: float = 15.0) -> None:
        """Starts Kamailio and returns once core.uptime answers on the unix socket.

        Call it from a thread that lives as long as Kamailio (normally the main thread): the
        parent-death signal fires when the thread that started Kamailio ends.
        """
        if self.running:
            raise HarnessError(f"kamailio already running (pid {self.pid})")
        for stale in (self.unix_path, self.unixd_path, self.pid_path):
            stale.unlink(missing_ok=True)
        command = [
            *self.command,
            "-f", str(self.inside(self.config_path)),
            "-DD", "-E",
            "-P", str(self.inside(self.pid_path)),
            "-Y", str(self.inside(self.rundir)),
            "-m", str(self.shm_mb),
            "-M", "8",
        ]  # fmt: skip
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                process_group=0,
                preexec_fn=_set_parent_death_signal if sys.platform == "linux" else None,
            )
        _RUNNING[self.process.pid] = self
        try:
            self._wait_ready(timeout)
        except BaseException:
            self._terminate()
            raise

    def _wait_ready(self, timeout: float) -> None:
        # The ctl socket accepts ~40 ms after exec, the first reply comes ~200 ms after it:
        # only an answered RPC means ready.
        process = self.process
        assert process is not None
        address = parse_address(self.unix)
        deadline = time.monotonic() + timeout

        async def ready() -> None:
            while True:
                if process.poll() is not None:
                    raise HarnessError(
                        f"kamailio exited with {process.returncode} while starting:\n"
                        + self.log_tail()
                    )
                if time.monotonic() > deadline:
                    raise HarnessError(
                        f"kamailio not ready after {timeout:g} s:\n{self.log_tail()}"
                    )
                with contextlib.suppress(BinRpcError, OSError):
                    connection = await connect(address, timeout=1.0)
                    try:
                        await connection.call("core.uptime")
                        return
                    finally:
                        await connection.close()
                await asyncio.sleep(0.02)

        _run_in_own_loop(ready)

    def _terminate(self) -> None:
        process = self.process
        if process is None:
            return
        _RUNNING.pop(process.pid, None)
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(0.3)
            except subprocess.TimeoutExpired:
                # Kamailio's TCP main process sometimes misses the SIGTERM its parent relays
                # when it comes right after start-up, and the parent waits for it forever.
                os.killpg(process.pid, signal.SIGTERM)
                try:
                    process.wait(STOP_GRACE)
                except subprocess.TimeoutExpired:
                    os.killpg(process.pid, signal.SIGKILL)
                    process.wait()
        # Children left behind by a main process that died: the group is Kamailio's alone.
        deadline = time.monotonic() + 1.0
        while _group_alive(process.pid) and time.monotonic() < deadline:
            time.sleep(0.01)
        if _group_alive(process.pid):
            os.killpg(process.pid, signal.SIGKILL)

    def stop(self) -> None:
        """Stops Kamailio (if running): SIGTERM by PID, SIGKILL to its process group after 5 s.

        Removes the directory when the harness created it.
        """
        self._terminate()
        if self._owns_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def restart(self, timeout: float = 15.0) -> None:
        """Stops and starts again on the same ports (all counters start from 0)."""
        self._terminate()
        self.start(timeout)

    def log_tail(self, lines: int = 30) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])

    def __enter__(self) -> KamailioInstance:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()


@atexit.register
def stop_all() -> None:
    """Stops every instance still running (the atexit guard; also run when the test run ends)."""
    for instance in list(_RUNNING.values()):
        instance.stop()


@dataclass(frozen=True)
class SippRun:
    """The outcome of one sipp client run: exit code, call counts and its output."""

    returncode: int
    successful: int
    failed: int
    output: str


class Sipp:
    """Bounded SIP traffic against a KamailioInstance: every run has -m, -timeout and -nostdin
    and a subprocess timeout, on free loopback ports. A run that sipp reports as failed raises
    HarnessError unless check=False."""

    def __init__(self, kamailio: KamailioInstance, workdir: Path | str) -> None:
        binary = find_binary("sipp")
        if binary is None:
            raise HarnessError(f"sipp is not installed: {INSTALL_HINT}")
        self.binary = binary
        self.kamailio = kamailio
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)

    def register(self, n: int, *, check: bool = True) -> SippRun:
        """n REGISTERs (users user1..userN) over UDP, each answered 200 by the registrar."""
        return self._client("register.xml", n, ["-r", "50"], check=check)

    def busy(self, n: int, *, check: bool = True) -> SippRun:
        """n INVITEs to user "busy", answered 486 by Kamailio itself."""
        return self._client("uac_busy.xml", n, ["-r", "50"], check=check)

    def calls(self, n: int, *, hold_ms: int = 0, check: bool = True) -> SippRun:
        """n INVITE/ACK/BYE calls through the dispatcher to a sipp UAS on the live destination.

        Calls that the dispatcher first sends to the dead destination fail over after fr_timer
        (2 s), so a run right after start takes a little longer.
        """
        uas_timeout = 60
        command = [
            self.binary,
            "-sf", str(SCENARIO_DIR / "uas_rr.xml"),
            "-i", "127.0.0.1",
            "-p", str(self.kamailio.dispatcher_live_port),
            "-m", str(n),
            "-aa", "-nostdin",
            "-timeout", f"{uas_timeout}s",
        ]  # fmt: skip
        with (self.workdir / "uas.out").open("wb") as uas_log:
            uas = subprocess.Popen(
                command,
                cwd=self.workdir,
                stdin=subprocess.DEVNULL,
                stdout=uas_log,
                stderr=subprocess.STDOUT,
            )
        try:
            self._wait_listening(uas, self.kamailio.dispatcher_live_port)
            extra = ["-s", "callee", "-key", "rtp", "no", "-r", "20", "-l", "10"]
            extra += ["-d", str(hold_ms)]
            run = self._client("uac_rr.xml", n, extra, check=check)
            uas.wait(timeout=10)
        finally:
            if uas.poll() is None:
                uas.kill()
                uas.wait()
        return run

    def _wait_listening(self, process: subprocess.Popen[bytes], port: int) -> None:
        """Waits until a sipp server has bound its UDP port (bounded). Looks in the kernel's
        socket table: binding the port to see whether it is taken would, for that moment, take
        it from sipp, which then exits with a bind error (254)."""
        bound = f"0100007F:{port:04X}"  # 127.0.0.1:port as /proc/net/udp writes it
        deadline = time.monotonic() + 5.0
        while time.monotonic() < deadline:
            if process.poll() is not None:
                log = (self.workdir / "uas.out").read_text(errors="replace")[-2000:]
                raise HarnessError(f"sipp UAS exited with {process.returncode}:\n{log}")
            with open("/proc/net/udp") as table:
                if any(line.split()[1] == bound for line in table.readlines()[1:]):
                    return
            time.sleep(0.02)
        raise HarnessError(f"sipp UAS not listening on udp:127.0.0.1:{port}")

    def _client(self, scenario: str, n: int, extra: list[str], *, check: bool) -> SippRun:
        (port,) = free_ports("udp")
        sipp_timeout = 30
        command = [
            self.binary,
            "-sf", str(SCENARIO_DIR / scenario),
            "-i", "127.0.0.1",
            "-p", str(port),
            "-m", str(n),
            "-nostdin",
            "-timeout", f"{sipp_timeout}s",
            "-timeout_error",
            # no UDP retransmissions: on a busy machine a retransmitted request would move
            # Kamailio's received-request counters by more than the calls sent
            "-nr",
            *extra,
            f"127.0.0.1:{self.kamailio.sip_port}",
        ]  # fmt: skip
        try:
            completed = subprocess.run(
                command,
                cwd=self.workdir,
                stdin=subprocess.DEVNULL,
                capture_output=True,
                timeout=sipp_timeout + 15,
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            raise HarnessError(f"sipp {scenario} did not finish in time") from exc
        output = completed.stdout.decode(errors="replace") + completed.stderr.decode(
            errors="replace"
        )
        run = SippRun(
            completed.returncode,
            _cumulative(output, "Successful call"),
            _cumulative(output, "Failed call"),
            output,
        )
        if check and (run.returncode != 0 or run.successful != n):
            tail = "\n".join(output.splitlines()[-25:])
            raise HarnessError(
                f"sipp {scenario}: exit {run.returncode}, {run.successful}/{n} successful\n{tail}"
            )
        return run


def _cumulative(output: str, row: str) -> int:
    """The cumulative column of a row of sipp's final statistics screen."""
    matches = re.findall(rf"{row}\s*\|\s*\d+\s*\|\s*(\d+)", output)
    return int(matches[-1]) if matches else 0
