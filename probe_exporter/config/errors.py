"""What loading a config file or resolving a /probe target can raise."""

from __future__ import annotations

from collections.abc import Sequence

from ..errors import ExporterError
from .schema import Issue, issues_message

__all__ = [
    "MAX_NAME_LENGTH",
    "ConfigError",
    "TargetRejected",
    "TargetResolveError",
    "UnknownModule",
]

MAX_NAME_LENGTH = 128  # target, module and label names


class ConfigError(ExporterError, ValueError):
    """An invalid or unreadable targets.toml.

    `issues` holds every error found in the file (`--config.check` prints them all); `key` and
    `line` are those of the first. The message names the file and each key path (or line).
    """

    def __init__(
        self,
        message: str,
        *,
        key: str | None = None,
        line: int | None = None,
        issues: Sequence[Issue] = (),
    ) -> None:
        super().__init__(message)
        self.key = key
        self.line = line
        self.issues = tuple(issues)

    @classmethod
    def from_issues(cls, source: str, issues: Sequence[Issue]) -> ConfigError:
        first = issues[0]
        return cls(
            issues_message(source, issues), key=first.key or None, line=first.line, issues=issues
        )


class TargetRejected(ExporterError):
    """The target is neither a listed name nor allowed by a rule (HTTP 403); nothing was
    connected to. The message, one line, is the client's: it never tells what a name resolves
    to, or whether it resolves. `detail`, for the exporter's log, may."""

    def __init__(self, message: str, detail: str | None = None) -> None:
        super().__init__(message)
        self.detail = detail or message


class TargetResolveError(ExporterError):
    """A host name allowed by a rule did not resolve (the probe fails at stage "resolve")."""


class UnknownModule(ExporterError, LookupError):
    """The requested module is not defined (HTTP 400)."""

    def __init__(self, module: str) -> None:
        super().__init__(f"unknown module {module[:MAX_NAME_LENGTH]!r}")
        self.module = module
