"""stats.fetch: Kamailio's statistics (kex core/shmem, core tcp/dns, and module stats).

Every statistic is exported once:
* the seed exporter's 19 families, unchanged except `kamailio_bad_msg_hdr` and
  `kamailio_dialog`, now untyped, with correctly typed families beside them;
* dedicated families for the per-method reply counters (core) and usrloc's per-table stats;
* `script.*` (the statistics module) by the seed's rule: `kamailio_<lower-cased name>`;
* every other statistic generically as `kamailio_stats_<group>_<name>`, `_total` added to
  counters (gauges come from a table of known gauges and name rules).
A name that would repeat another family's (any collector's, the probe's, or an earlier
statistic's, whatever case or separators a script uses) is dropped and counted; characters
invalid in a metric name become `_` (counted too).

Values are `%lu` decimal strings: a gauge at 2^63 or above is a negative value. Anything else
(a sign, spaces, `_`, non-ASCII digits, 2^64 or more, which `%lu` cannot print) is not a value:
the statistic is dropped and counted (`kamailio_exporter_stats_dropped{reason="bad_value"}`).
"""

# Longer than 500 lines because most of it is data: the seed's family table (names and HELP
# texts that dashboards depend on) and the table of known gauges, beside the function they serve
# (the docstring above is METRICS.md's text for this collector).

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Final, NamedTuple

from ..binrpc.codec import Fault, Struct, Value
from ..metrics import FamilyInfo, MetricFamily, MetricType, exposed_names
from .base import Call, Collector, CollectorError, CollectorOptions, Reply, fault_error

SOURCE: Final = "stats.fetch all"
SEED_NOTE: Final = "seed"


def _seed(name: str, type_: MetricType, help_: str, labels: tuple[str, ...] = ()) -> FamilyInfo:
    return FamilyInfo(name, type_, help_, labels, SOURCE, SEED_NOTE)


CORE_REQUEST: Final = _seed(
    "kamailio_core_request_total", "counter", "Request counters", ("method",)
)
CORE_RCV_REQUEST: Final = _seed(
    "kamailio_core_rcv_request_total", "counter", "Received requests by method", ("method",)
)
CORE_REPLY: Final = _seed("kamailio_core_reply_total", "counter", "Reply counters", ("type",))
CORE_RCV_REPLY: Final = _seed(
    "kamailio_core_rcv_reply_total", "counter", "Received replies by code", ("code",)
)
SHM_BYTES: Final = _seed("kamailio_shm_bytes", "gauge", "Shared memory sizes", ("type",))
SHM_FRAGMENTS: Final = _seed("kamailio_shm_fragments", "gauge", "Shared memory fragment count")
DNS_FAILED: Final = _seed("kamailio_dns_failed_request_total", "counter", "Failed dns requests")
BAD_URI: Final = _seed("kamailio_bad_uri_total", "counter", "Messages with bad uri")
BAD_MSG_HDR: Final = FamilyInfo(
    "kamailio_bad_msg_hdr",
    "untyped",
    "Messages with bad message header",
    (),
    SOURCE,
    "seed name; was a counter without _total, now untyped: an unknown family in OpenMetrics, "
    "whose counters gain _total",
)
SL_REPLY: Final = _seed(
    "kamailio_sl_reply_total", "counter", "Stateless replies by code", ("code",)
)
SL_TYPE: Final = _seed("kamailio_sl_type_total", "counter", "Stateless replies by type", ("type",))
TCP_TOTAL: Final = _seed("kamailio_tcp_total", "counter", "TCP connection counters", ("type",))
TCP_CONNECTIONS: Final = _seed("kamailio_tcp_connections", "gauge", "Opened TCP connections")
TCP_WRITEQUEUE: Final = _seed("kamailio_tcp_writequeue", "gauge", "TCP write queue size")
TMX_CODE: Final = _seed(
    "kamailio_tmx_code_total", "counter", "Completed Transaction counters by code", ("code",)
)
TMX_TYPE: Final = _seed(
    "kamailio_tmx_type_total", "counter", "Completed Transaction counters by type", ("type",)
)
TMX: Final = _seed("kamailio_tmx", "gauge", "Ongoing Transactions", ("type",))
TMX_RPL: Final = _seed("kamailio_tmx_rpl_total", "counter", "Tmx reply counters", ("type",))
DIALOG: Final = FamilyInfo(
    "kamailio_dialog",
    "untyped",
    "Ongoing Dialogs",
    ("type",),
    SOURCE,
    "seed name; was a counter (gauges and counters mixed, no _total), now untyped; see the "
    "kamailio_dialog_* families",
)

BAD_MSG_HDR_TOTAL: Final = FamilyInfo(
    "kamailio_bad_msg_hdr_total",
    "counter",
    "Messages with bad message header",
    (),
    SOURCE,
    "correctly typed kamailio_bad_msg_hdr; an unknown family in OpenMetrics, where a counter "
    "would take the family name kamailio_bad_msg_hdr",
    openmetrics_unknown=True,
)
DIALOG_ACTIVE: Final = FamilyInfo(
    "kamailio_dialog_active_dialogs",
    "gauge",
    "Dialogs in the confirmed (active) state",
    (),
    SOURCE,
)
DIALOG_EARLY: Final = FamilyInfo(
    "kamailio_dialog_early_dialogs", "gauge", "Dialogs in the early state", (), SOURCE
)
DIALOG_PROCESSED: Final = FamilyInfo(
    "kamailio_dialog_processed_dialogs_total", "counter", "Dialogs processed", (), SOURCE
)
DIALOG_EXPIRED: Final = FamilyInfo(
    "kamailio_dialog_expired_dialogs_total",
    "counter",
    "Dialogs ended by their timeout",
    (),
    SOURCE,
)
DIALOG_FAILED: Final = FamilyInfo(
    "kamailio_dialog_failed_dialogs_total",
    "counter",
    "Dialogs that failed to be established",
    (),
    SOURCE,
)
CORE_RCV_REPLY_METHOD: Final = FamilyInfo(
    "kamailio_core_rcv_reply_method_total",
    "counter",
    "Received replies by code class and request method",
    ("code", "method"),
    SOURCE,
    "core.rcv_replies_<N>xx_<method> (5.2+)",
)
USRLOC_REGISTERED: Final = FamilyInfo(
    "kamailio_usrloc_registered_users",
    "gauge",
    "Users registered in all usrloc tables",
    (),
    SOURCE,
)
USRLOC_USERS: Final = FamilyInfo(
    "kamailio_usrloc_users",
    "gauge",
    "Users (AoRs) in a usrloc table",
    ("table",),
    SOURCE,
    "usrloc.<table>_users, or <table>-users before 5.4",
)
USRLOC_CONTACTS: Final = FamilyInfo(
    "kamailio_usrloc_contacts",
    "gauge",
    "Contacts in a usrloc table",
    ("table",),
    SOURCE,
    "usrloc.<table>_contacts, or <table>-contacts before 5.4",
)
USRLOC_EXPIRES: Final = FamilyInfo(
    "kamailio_usrloc_expires_total",
    "counter",
    "Contacts expired in a usrloc table",
    ("table",),
    SOURCE,
    "usrloc.<table>_expires, or <table>-expires before 5.4",
)
DROPPED: Final = FamilyInfo(
    "kamailio_exporter_stats_dropped",
    "gauge",
    "Statistics left out of this probe's output: duplicate (its metric name belongs to another "
    "family), bad_value (not a number); group_fault counts groups whose stats.fetch failed",
    ("reason",),
    SOURCE,
)
RENAMED: Final = FamilyInfo(
    "kamailio_exporter_stats_renamed",
    "gauge",
    "Statistics whose metric name had characters invalid in a metric name, replaced by _",
    (),
    SOURCE,
)

GENERIC_COUNTER: Final = FamilyInfo(
    "kamailio_stats_<group>_<name>_total",
    "counter",
    "Kamailio statistic <group>.<name>",
    (),
    SOURCE,
    "every statistic of no family above that is not a known gauge",
)
GENERIC_GAUGE: Final = FamilyInfo(
    "kamailio_stats_<group>_<name>",
    "gauge",
    "Kamailio statistic <group>.<name>",
    (),
    SOURCE,
    "known gauges (see the table below)",
)
SCRIPT_COUNTER: Final = FamilyInfo(
    "kamailio_<name>",
    "counter",
    "Scripted metric <name>",
    (),
    SOURCE,
    "seed rule for script.<name> ending in _total, _seconds or _bytes (case-sensitive)",
)
SCRIPT_GAUGE: Final = FamilyInfo(
    "kamailio_<name>",
    "gauge",
    "Scripted metric <name>",
    (),
    SOURCE,
    "seed rule for every other script.<name>",
)

# Families with a fixed name, in output order.
STATIC: Final[tuple[FamilyInfo, ...]] = (
    CORE_REQUEST,
    CORE_RCV_REQUEST,
    CORE_REPLY,
    CORE_RCV_REPLY,
    SHM_BYTES,
    SHM_FRAGMENTS,
    DNS_FAILED,
    BAD_URI,
    BAD_MSG_HDR,
    SL_REPLY,
    SL_TYPE,
    TCP_TOTAL,
    TCP_CONNECTIONS,
    TCP_WRITEQUEUE,
    TMX_CODE,
    TMX_TYPE,
    TMX,
    TMX_RPL,
    DIALOG,
    BAD_MSG_HDR_TOTAL,
    DIALOG_ACTIVE,
    DIALOG_EARLY,
    DIALOG_PROCESSED,
    DIALOG_EXPIRED,
    DIALOG_FAILED,
    CORE_RCV_REPLY_METHOD,
    USRLOC_REGISTERED,
    USRLOC_USERS,
    USRLOC_CONTACTS,
    USRLOC_EXPIRES,
)
FAMILIES: Final[tuple[FamilyInfo, ...]] = (
    *STATIC,
    GENERIC_COUNTER,
    GENERIC_GAUGE,
    SCRIPT_COUNTER,
    SCRIPT_GAUGE,
    DROPPED,
    RENAMED,
)
_INDEX: Final = {info: index for index, info in enumerate(STATIC)}

# Gauges among the statistics (Kamailio does not type them): no-reset and function stats that
# hold a current level, per group. Any other statistic is a gauge when a word of its name says
# so (GAUGE_WORDS), else a counter.
KNOWN_GAUGES: Final[dict[str, frozenset[str]]] = {
    "dialog": frozenset({"active_dialogs", "early_dialogs"}),
    "httpclient": frozenset({"connections"}),
    "imc": frozenset({"active_rooms"}),
    "nat_traversal": frozenset(
        {"keepalive_endpoints", "registered_endpoints", "subscribed_endpoints", "dialog_endpoints"}
    ),
    "registrar": frozenset(
        {"max_expires", "max_contacts", "default_expire", "default_expires_range", "expires_range"}
    ),
    "sctp": frozenset({"current_opened_connections", "current_tracked_connections"}),
    "shmem": frozenset(
        {"total_size", "used_size", "real_used_size", "max_used_size", "free_size", "fragments"}
    ),
    "tcp": frozenset({"current_opened_connections", "current_write_queue_size"}),
    "tls": frozenset({"opened_connections", "max_connections", "clear_text_write_queued_bytes"}),
    "tmx": frozenset({"active_transactions", "inuse_transactions"}),
    "tsilo": frozenset({"stored_ruris", "stored_transactions"}),
    "uac": frozenset({"regtotal", "regactive", "regdisabled"}),
    "usrloc": frozenset({"registered_users"}),
    "websocket": frozenset(
        {
            "ws_current_connections",
            "ws_sip_current_connections",
            "ws_msrp_current_connections",
            "ws_max_concurrent_connections",
            "ws_sip_max_concurrent_connections",
            "ws_msrp_max_concurrent_connections",
            "ws_sip_max_concurrent_connectons",
            "ws_msrp_max_concurrent_connectons",
        }
    ),
}
GAUGE_WORDS: Final = frozenset({"current", "active", "inuse", "max", "size"})

# Groups asked for one by one when `stats.fetch all` overflows its 8 KB struct (FAULT 500):
# those of the core, kex and the modules that register statistics. An absent group answers an
# empty struct.
KNOWN_GROUPS: Final[tuple[str, ...]] = tuple(
    sorted(
        {
            "core",
            "dialog",
            "dns",
            "http_async_client",
            "httpclient",
            "imc",
            "kafka",
            "msilo",
            "mysql",
            "nat_traversal",
            "pike",
            "registrar",
            "sctp",
            "script",
            "shmem",
            "sipcapture",
            "siptrace",
            "sl",
            "sst",
            "tcp",
            "tls",
            "tmx",
            "tsilo",
            "uac",
            "usrloc",
            "websocket",
        }
    )
)

# Names the probe gives its own families: never taken by a statistic.
PROBE_NAME: Final = "kamailio_up"
PROBE_PREFIXES: Final = ("kamailio_exporter_", "kamailio_probe_")

INT63: Final = 1 << 63
INT64: Final = 1 << 64
_GENERIC_INVALID: Final = re.compile(r"[^a-z0-9_]")
_SCRIPT_INVALID: Final = re.compile(r"[^a-z0-9_:]")


# How a statistic is exported: (kind, gauge, targets, named).
# FIXED: `targets` are (index in STATIC, label values) of families with a fixed name;
# DERIVED: the same, with label values made from the statistic's name, which two statistics
#   may share (usrloc's `-` and `_`);
# NAMED, SCRIPT: the statistic is a family of its own, `named`.
# `gauge`: the `%lu` value may be a negative gauge.
FIXED, DERIVED, NAMED, SCRIPT = range(4)
Target = tuple[int, tuple[str, ...]]
Route = tuple[int, bool, tuple[Target, ...], "_Named | None"]


class _Named(NamedTuple):
    """A statistic that is a family of its own, named from the statistic."""

    name: str
    type: MetricType
    help: str
    exposed: tuple[str, ...]
    renamed: bool


def _fixed_routes() -> dict[str | None, Route]:
    routes: dict[str | None, Route] = {}

    def add(key: str, *targets: tuple[FamilyInfo, tuple[str, ...]]) -> None:
        group, _, name = key.partition(".")
        routes[key] = (
            FIXED,
            name in KNOWN_GAUGES.get(group, ()),
            tuple((_INDEX[info], labels) for info, labels in targets),
            None,
        )

    for kind in ("drop", "err", "fwd", "rcv"):
        add(f"core.{kind}_requests", (CORE_REQUEST, (kind,)))
        add(f"core.{kind}_replies", (CORE_REPLY, (kind,)))
    for method in (
        "ack",
        "bye",
        "cancel",
        "info",
        "invite",
        "message",
        "notify",
        "options",
        "prack",
        "publish",
        "refer",
        "register",
        "subscribe",
        "update",
    ):
        add(f"core.rcv_requests_{method}", (CORE_RCV_REQUEST, (method,)))
    add("core.unsupported_methods", (CORE_RCV_REQUEST, ("unsupported",)))
    for code in (
        "18x",
        "1xx",
        "2xx",
        "3xx",
        "401",
        "404",
        "407",
        "408",
        "480",
        "486",
        "4xx",
        "5xx",
        "6xx",
    ):
        add(f"core.rcv_replies_{code}", (CORE_RCV_REPLY, (code,)))
    for kind in ("free", "max_used", "real_used", "total", "used"):
        add(f"shmem.{kind}_size", (SHM_BYTES, (kind,)))
    add("shmem.fragments", (SHM_FRAGMENTS, ()))
    add("dns.failed_dns_request", (DNS_FAILED, ()))
    add("core.bad_URIs_rcvd", (BAD_URI, ()))
    add("core.bad_msg_hdr", (BAD_MSG_HDR, ()), (BAD_MSG_HDR_TOTAL, ()))
    for code in (
        "1xx",
        "200",
        "202",
        "2xx",
        "300",
        "301",
        "302",
        "3xx",
        "400",
        "401",
        "403",
        "404",
        "407",
        "408",
        "483",
        "4xx",
        "500",
        "5xx",
        "6xx",
    ):
        add(f"sl.{code}_replies", (SL_REPLY, (code,)))
    for stat, kind in (
        ("failures", "failure"),
        ("received_ACKs", "received_ack"),
        ("sent_err_replies", "sent_err_reply"),
        ("sent_replies", "sent_reply"),
        ("xxx_replies", "xxx_reply"),
    ):
        add(f"sl.{stat}", (SL_TYPE, (kind,)))
    for kind in (
        "con_reset",
        "con_timeout",
        "connect_failed",
        "connect_success",
        "established",
        "local_reject",
        "passive_open",
        "send_timeout",
        "sendq_full",
    ):
        add(f"tcp.{kind}", (TCP_TOTAL, (kind,)))
    add("tcp.current_opened_connections", (TCP_CONNECTIONS, ()))
    add("tcp.current_write_queue_size", (TCP_WRITEQUEUE, ()))
    for code in ("2xx", "3xx", "4xx", "5xx", "6xx"):
        add(f"tmx.{code}_transactions", (TMX_CODE, (code,)))
    add("tmx.UAC_transactions", (TMX_TYPE, ("uac",)))
    add("tmx.UAS_transactions", (TMX_TYPE, ("uas",)))
    add("tmx.active_transactions", (TMX, ("active",)))
    add("tmx.inuse_transactions", (TMX, ("inuse",)))
    for kind in ("absorbed", "generated", "received", "relayed", "sent"):
        add(f"tmx.rpl_{kind}", (TMX_RPL, (kind,)))
    for stat, typed in (
        ("active_dialogs", DIALOG_ACTIVE),
        ("early_dialogs", DIALOG_EARLY),
        ("expired_dialogs", DIALOG_EXPIRED),
        ("failed_dialogs", DIALOG_FAILED),
        ("processed_dialogs", DIALOG_PROCESSED),
    ):
        add(f"dialog.{stat}", (DIALOG, (stat,)), (typed, ()))
    add("usrloc.registered_users", (USRLOC_REGISTERED, ()))
    return routes


_FIXED_ROUTES: Final = _fixed_routes()
_FIXED_TARGETS: Final = frozenset(target for route in _FIXED_ROUTES.values() for target in route[2])
# Routes of the statistics met so far: Kamailio's names repeat from probe to probe.
_ROUTE_CACHE_LIMIT: Final = 50_000
_routes = dict(_FIXED_ROUTES)

_USRLOC_KINDS: Final = (
    ("users", USRLOC_USERS),
    ("contacts", USRLOC_CONTACTS),
    ("expires", USRLOC_EXPIRES),
)


def _derived(info: FamilyInfo, labels: tuple[str, ...], gauge: bool) -> Route:
    return (DERIVED, gauge, ((_INDEX[info], labels),), None)


def _is_gauge(group: str, name: str) -> bool:
    known = KNOWN_GAUGES.get(group)
    if known is not None and name in known:
        return True
    return not GAUGE_WORDS.isdisjoint(name.lower().split("_"))


def _derived_route(group: str, name: str) -> Route | None:
    """A statistic whose name gives the labels of a fixed family, or None."""
    if group == "core":
        if name.startswith("rcv_requests_"):
            return _derived(CORE_RCV_REQUEST, (name[13:],), gauge=False)
        if name.startswith("rcv_replies_"):
            code, _, method = name[12:].partition("_")
            if method:
                return _derived(CORE_RCV_REPLY_METHOD, (code, method), gauge=False)
            return _derived(CORE_RCV_REPLY, (code,), gauge=False)
    if group == "usrloc":
        for kind, info in _USRLOC_KINDS:
            cut = len(name) - len(kind) - 1
            if cut > 0 and name.endswith(kind) and name[cut] in "-_":
                return _derived(info, (name[:cut],), gauge=kind != "expires")
    return None


def _route(key: str) -> Route:
    """How a statistic not in the fixed table is exported (computed once per name)."""
    group, _, name = key.partition(".")
    if group == "script":
        lowered = name.lower()
        metric = "kamailio_" + _SCRIPT_INVALID.sub("_", lowered)
        counter = name.endswith(("_total", "_seconds", "_bytes"))
        type_: MetricType = "counter" if counter else "gauge"
        named = _Named(
            metric,
            type_,
            "Scripted metric " + lowered,
            exposed_names(metric, type_),
            metric != "kamailio_" + lowered,
        )
        return (SCRIPT, not counter, (), named)
    derived = _derived_route(group, name)
    # labels a fixed statistic already gives (core.unsupported_methods is method="unsupported")
    if derived is not None and derived[2][0] not in _FIXED_TARGETS:
        return derived
    gauge = _is_gauge(group, name)
    lowered = f"{group}_{name}".lower()
    sanitised = _GENERIC_INVALID.sub("_", lowered)
    metric = "kamailio_stats_" + sanitised
    type_ = "gauge" if gauge else "counter"
    if not gauge and not metric.endswith("_total"):
        metric += "_total"
    named = _Named(
        metric,
        type_,
        f"Kamailio statistic {group}.{name}",
        exposed_names(metric, type_),
        sanitised != lowered,
    )
    return (NAMED, gauge, (), named)


def _stat_members(replies: Sequence[Reply]) -> tuple[list[tuple[str | None, Value]], int]:
    """The (key, value) pairs of every reply, and how many per-group fetches failed."""
    if len(replies) == 1 and isinstance(replies[0], Fault):
        raise fault_error(SOURCE, replies[0])
    members: list[tuple[str | None, Value]] = []
    group_faults = 0
    for reply in replies:
        if isinstance(reply, Fault):
            group_faults += 1
            continue
        if len(reply) != 1 or not isinstance(reply[0], Struct):
            raise CollectorError(f"{SOURCE}: expected one struct, got {len(reply)} values")
        members += reply[0].members
    if group_faults == len(replies):
        raise CollectorError(f"{SOURCE}: every per-group stats.fetch failed")
    return members, group_faults


def _value(raw: Value, gauge: bool) -> int | None:
    """A `%lu` statistic; None when it is not one (int() would take " 7 ", "1_000", "+7"...)."""
    if type(raw) is not str or not (raw.isascii() and raw.isdigit()):
        return None
    value = int(raw)
    if value >= INT64:
        return None
    return value - INT64 if gauge and value >= INT63 else value


def _is_reserved(name: str, reserved: frozenset[str]) -> bool:
    return name in reserved or name == PROBE_NAME or name.startswith(PROBE_PREFIXES)


def _collect(replies: Sequence[Reply], reserved: frozenset[str]) -> list[MetricFamily]:
    members, group_faults = _stat_members(replies)
    slots: list[MetricFamily | None] = [None] * len(STATIC)
    families: list[MetricFamily] = []  # families of their own, in order
    scripted: list[tuple[_Named, bool, Value]] = []
    taken: set[str] = set()
    derived_seen: set[Target] = set()
    duplicates = bad_values = renamed = 0
    routes = _routes
    if len(routes) > _ROUTE_CACHE_LIMIT:
        routes.clear()
        routes.update(_FIXED_ROUTES)

    def add_named(named: _Named, value: int) -> None:
        nonlocal duplicates, renamed
        for name in named.exposed:
            if name in taken or _is_reserved(name, reserved):
                duplicates += 1
                return
        taken.update(named.exposed)
        renamed += named.renamed
        family = MetricFamily(named.name, named.type, named.help)
        family.samples.append(((), value))
        families.append(family)

    for key, raw in members:
        route = routes.get(key)
        if route is None:
            if key is None:
                raise CollectorError(f"{SOURCE}: a statistic without a name")
            route = routes[key] = _route(key)
        kind, gauge, targets, named = route
        if named is not None and kind == SCRIPT:
            scripted.append((named, gauge, raw))
            continue
        # inline _value(): this loop runs for every statistic of every probe
        if type(raw) is not str or not (raw.isascii() and raw.isdigit()):
            bad_values += 1
            continue
        value = int(raw)
        # 18 digits or fewer: below 2**63, without the comparisons of big ints (slow compiled)
        if len(raw) > 18:
            if value >= INT64:
                bad_values += 1
                continue
            if gauge and value >= INT63:
                value -= INT64
        if kind == FIXED:
            for index, labels in targets:
                family = slots[index]
                if family is None:
                    family = slots[index] = STATIC[index].family()
                family.samples.append((labels, value))
        elif kind == DERIVED:
            target = targets[0]
            if target in derived_seen:
                duplicates += 1
                continue
            derived_seen.add(target)
            index, labels = target
            family = slots[index]
            if family is None:
                family = slots[index] = STATIC[index].family()
            family.samples.append((labels, value))
        elif named is not None:
            add_named(named, value)

    # Scripted statistics last: a script's names never push out the exporter's own.
    for named, gauge, raw in scripted:
        script_value = _value(raw, gauge)
        if script_value is None:
            bad_values += 1
        else:
            add_named(named, script_value)

    dropped = DROPPED.family()
    dropped.samples += [
        (("duplicate",), duplicates),
        (("bad_value",), bad_values),
        (("group_fault",), group_faults),
    ]
    renamed_family = RENAMED.family()
    renamed_family.samples.append(((), renamed))
    fixed = [family for family in slots if family is not None]
    return [*fixed, *families, dropped, renamed_family]


def _calls(options: CollectorOptions) -> list[Call]:
    return [Call("stats.fetch", ("all",))]


def _fallback(replies: Sequence[Reply], options: CollectorOptions) -> list[Call]:
    """One `stats.fetch <group>:` per group when `stats.fetch all` overflowed (FAULT 500)."""
    if len(replies) == 1 and isinstance(replies[0], Fault) and replies[0].code == 500:
        groups = dict.fromkeys((*KNOWN_GROUPS, *options.stats_groups))
        return [Call("stats.fetch", (group + ":",)) for group in groups]
    return []


def make_collector(reserved: frozenset[str]) -> Collector:
    """The stats collector; `reserved` holds every name the other collectors may emit."""
    own = frozenset(name for info in STATIC for name in exposed_names(info.name, info.type))
    everyone = reserved | own | {DROPPED.name, RENAMED.name}

    def collect(replies: Sequence[Reply], options: CollectorOptions) -> list[MetricFamily]:
        return _collect(replies, everyone)

    return Collector("stats", frozenset({"stats.fetch"}), _calls, collect, _fallback, FAMILIES)
