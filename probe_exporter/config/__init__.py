"""targets.toml: modules, listed targets, allow rules and pool settings; target resolution.

The file (every key is optional; see the example targets.toml at the repository root):

    [pool]            idle_ttl (seconds, default 300), max_connections (512), per_target (1),
                      max_adhoc_connections (128)
    [modules.NAME]    collectors (["all"]), timeout (seconds, default 5), collector options,
                      limits (max_reply_bytes, max_probe_bytes, max_values, max_samples)
    [[targets]]       name, address (required); module, timeout, labels, xhttp_prom_url,
                      rtpengine_metrics_url
    [[allow]]         address (a pattern, required); module

A `default` module (every collector, 5 s) exists even when the file defines none. Validation is
strict: unknown keys, wrong types, out-of-range values, bad addresses, entries given twice and
dangling references are errors naming the key, as in `targets[2].address` (indexes count from
0), with the line where it can be told; one ConfigError carries every error of the file.

Target names are what `/probe?target=` is given: letters, digits, `_`, `.` and `-`, never `:`
or `/`, so that no name can be read as an address.

The package, one concern a module: `schema` (the validation mechanism, shared with the web
config), `document` (the schema of targets.toml), `model` (what a valid file means, allow
patterns), `loading` (reading and parsing), `resolve` (what a /probe target means),
`web_config` (the web config file).
"""

from __future__ import annotations

from .errors import MAX_NAME_LENGTH, ConfigError, TargetRejected, TargetResolveError, UnknownModule
from .loading import load_config, parse_config
from .model import (
    DEFAULT_MODULE,
    AllowRule,
    Config,
    Module,
    PoolSettings,
    ResolvedTarget,
    Target,
)
from .resolve import DEFAULT_RESOLVE_TIMEOUT, LOOKUPS, MAX_TARGET_LENGTH, resolve_target

__all__ = [
    "DEFAULT_MODULE",
    "DEFAULT_RESOLVE_TIMEOUT",
    "LOOKUPS",
    "MAX_NAME_LENGTH",
    "MAX_TARGET_LENGTH",
    "AllowRule",
    "Config",
    "ConfigError",
    "Module",
    "PoolSettings",
    "ResolvedTarget",
    "Target",
    "TargetRejected",
    "TargetResolveError",
    "UnknownModule",
    "load_config",
    "parse_config",
    "resolve_target",
]
