"""Loading targets.toml: read (regular files only), decode, validate, build the Config.

Every error of the file is collected in one ConfigError (`issues`), so that `--config.check`
shows them all; warnings (valid but probably not meant) travel in `Config.warnings` and are
logged here, once per load.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import os
import re
import tomllib

from .document import TargetsDocument, build_config, check_document, locate, warnings
from .errors import ConfigError
from .files import UnreadableFile, read_regular_file
from .model import Config
from .schema import Issue, key_path, validate

__all__ = ["load_config", "parse_config"]

log = logging.getLogger("probe_exporter")

_TOML_POSITION = re.compile(r"at line (\d+)")
_SECTIONS = ("pool", "modules", "targets", "allow")


def load_config(path: str | os.PathLike[str]) -> Config:
    """Reads and validates a targets.toml file; logs its warnings. Raises ConfigError for a
    file that is invalid or cannot be read ("config file X: no such file")."""
    source = os.fspath(path)
    try:
        data = read_regular_file(path)
    except UnreadableFile as exc:
        raise ConfigError(f"config file {source}: {exc}") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{source}: not UTF-8 (byte {exc.start})") from None
    config = parse_config(text, source)
    for warning in config.warnings:
        log.warning("%s: %s", source, warning, extra={"config": source})
    return config


def parse_config(text: str, source: str = "<string>") -> Config:
    """Validates targets.toml text; `sha256` is the hash of its UTF-8 bytes."""
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        position = _TOML_POSITION.search(str(exc))
        raise ConfigError(
            f"{source}: {exc}", line=int(position.group(1)) if position else None
        ) from None
    except RecursionError:
        # tomllib recurses once per level of nested arrays or inline tables.
        raise ConfigError(f"{source}: arrays or inline tables nested too deeply") from None
    where = functools.partial(locate, text)
    valid, issues = validate(TargetsDocument, document, locate=where)
    issues += [Issue(key_path(loc), reason, where(loc)) for loc, reason in check_document(document)]
    if issues:
        issues.sort(key=_document_order)
        raise ConfigError.from_issues(source, issues)
    assert isinstance(valid, TargetsDocument)
    sha256 = hashlib.sha256(text.encode("utf-8")).hexdigest()
    return build_config(valid, sha256, warnings(document, where))


def _document_order(issue: Issue) -> tuple[int, int, int]:
    """Sections in the schema's order, tables of an array in file order, then lines."""
    section, _, rest = issue.key.partition("[")
    section = section.split(".")[0]
    index = int(rest.partition("]")[0]) if rest[:1].isdigit() else -1
    order = _SECTIONS.index(section) if section in _SECTIONS else -1
    return (order, index, issue.line or 0)
