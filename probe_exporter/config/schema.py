"""The one validation mechanism of both config files (targets.toml and the web config YAML).

A document is described by `StrictModel` classes (pydantic v2); their fields use the checked
types made here (`checked`, `string`, `integer`...), whose messages are the exporter's own
("expected a string, got an integer"), not the library's. `validate` runs a model over a
decoded document and turns every error at once into `Issue`s that name the key path as users
write it (`targets[2].address`, `modules.light.timeout`) and, where a locator knows it, the
line. Cross-field checks that pydantic cannot place on a key return Issues themselves.
"""

from __future__ import annotations

import datetime
import json
import math
import re
import types
import typing
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, NoReturn

from pydantic import BaseModel, BeforeValidator, ConfigDict, ValidationError
from pydantic_core import ErrorDetails, PydanticCustomError

__all__ = [
    "Issue",
    "Loc",
    "StrictModel",
    "boolean",
    "checked",
    "choice",
    "describe",
    "fail",
    "integer",
    "issues_message",
    "key_path",
    "number",
    "string",
    "unique",
    "validate",
]

Loc = tuple[int | str, ...]
_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")


@dataclass(frozen=True, slots=True)
class Issue:
    """One error of a document: where (key path, line if known) and what is wrong."""

    key: str
    reason: str
    line: int | None = None

    def __str__(self) -> str:
        where = f"{self.key}: " if self.key else ""
        return f"{where}{self.reason}" + (f" (line {self.line})" if self.line else "")


def issues_message(source: str, issues: Sequence[Issue]) -> str:
    """One message for every issue of a file: `SOURCE: KEY: REASON; KEY: REASON (N errors)`."""
    where = f"{source}: " if source else ""
    message = where + "; ".join(str(issue) for issue in issues)
    return message + (f" ({len(issues)} errors)" if len(issues) > 1 else "")


class StrictModel(BaseModel):
    """A table of a config file: unknown keys are errors, values are never coerced."""

    model_config = ConfigDict(extra="forbid", frozen=True, arbitrary_types_allowed=True)
    # Keys that the file format knows but this exporter refuses: key -> why.
    unsupported_keys: ClassVar[Mapping[str, str]] = {}


# -- checked types -----------------------------------------------------------------------------


def fail(reason: str) -> NoReturn:
    """Ends a field check with `reason` as the whole message."""
    raise PydanticCustomError("invalid", "{reason}", {"reason": reason})


def _expected(what: str) -> NoReturn:
    # "got ..." is added by `validate`, in the document's own words.
    raise PydanticCustomError("expected", "expected {expected}", {"expected": what})


def checked(check: Callable[[Any], Any]) -> BeforeValidator:
    """A field check run before pydantic's own: it returns the value (converted) or fails."""
    return BeforeValidator(check)


def string(
    max_length: int, *, allow_empty: bool = False, what: str = "a string"
) -> Callable[[object], str]:
    def check(value: object) -> str:
        if not isinstance(value, str):
            _expected(what)
        if not value and not allow_empty:
            fail("empty")
        if len(value) > max_length:
            fail(f"{len(value)} characters, at most {max_length}")
        if "\x00" in value:
            fail("NUL character")
        return value

    return check


def boolean(what: str = "a boolean") -> Callable[[object], bool]:
    def check(value: object) -> bool:
        if not isinstance(value, bool):
            _expected(what)
        return value

    return check


def integer(low: int, high: int) -> Callable[[object], int]:
    def check(value: object) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            _expected("an integer")
        if not low <= value <= high:
            fail(f"{value} is out of range ({low}-{high})")
        return value

    return check


def number(
    high: float | None = None, *, what: str = "a finite number"
) -> Callable[[object], float]:
    """A float; with `high`, more than 0 and at most `high` (a duration)."""

    def check(value: object) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            _expected(what)
        result = float(value)
        if high is None:
            if not math.isfinite(result):
                _expected(what)
        elif not (math.isfinite(result) and 0 < result <= high):
            fail(f"{value} is out of range (more than 0, at most {high:g})")
        return result

    return check


def choice(choices: Collection[str], what: str = "a string") -> Callable[[object], str]:
    def check(value: object) -> str:
        if not isinstance(value, str) or not value:
            _expected(what)
        if value not in choices:
            fail(f"{value!r} is not one of {', '.join(sorted(choices))}")
        return value

    return check


def unique(items: Iterable[object], what: str = "named") -> None:
    """Fails on the first item that is given twice (a list option's entries are a set)."""
    seen: list[object] = []
    for index, item in enumerate(items):
        if item in seen:
            fail(f"{item!r} is {what} twice (entries {seen.index(item)} and {index})")
        seen.append(item)


# -- running a model over a document -----------------------------------------------------------

_NAMES: Mapping[type, str] = {
    bool: "a boolean",
    int: "an integer",
    float: "a float",
    str: "a string",
    list: "an array",
    dict: "a table",
    datetime.date: "a date/time",
    datetime.datetime: "a date/time",
    datetime.time: "a date/time",
}


def describe(value: object, names: Mapping[type, str] = _NAMES) -> str:
    """What a value is, in a file format's words (TOML's by default)."""
    if value is None:
        return "nothing"
    return names.get(type(value), type(value).__name__)


def key_path(loc: Loc) -> str:
    """`("targets", 2, "address")` -> `targets[2].address`; odd keys are quoted."""
    parts: list[str] = []
    for part in loc:
        if isinstance(part, int):
            parts.append(f"[{part}]")
        else:
            name = part if _BARE_KEY.fullmatch(part) else json.dumps(part)
            parts.append(f".{name}" if parts else name)
    return "".join(parts)


def validate(
    model: type[StrictModel],
    document: object,
    *,
    names: Mapping[type, str] = _NAMES,
    table: str = "a table",
    locate: Callable[[Loc], int | None] = lambda loc: None,
) -> tuple[StrictModel | None, list[Issue]]:
    """Validates `document`: the model, or None and every issue found (never only the first)."""
    try:
        return model.model_validate(document), []
    except ValidationError as exc:
        issues = [_issue(model, error, names, table) for error in exc.errors()]
    return None, [Issue(issue.key, issue.reason, locate(loc)) for loc, issue in _dedupe(issues)]


def _dedupe(issues: Sequence[tuple[Loc, Issue]]) -> list[tuple[Loc, Issue]]:
    # A union (or a key check and its value) can report one key more than once.
    seen: set[tuple[str, str]] = set()
    kept = []
    for loc, issue in issues:
        if (issue.key, issue.reason) not in seen:
            seen.add((issue.key, issue.reason))
            kept.append((loc, issue))
    return kept


def _issue(
    model: type[StrictModel], error: ErrorDetails, names: Mapping[type, str], table: str
) -> tuple[Loc, Issue]:
    loc: Loc = tuple(part for part in error["loc"] if part != "[key]")
    kind, value, context = error["type"], error["input"], error.get("ctx") or {}
    if kind == "invalid":
        reason = str(context["reason"])
    elif kind == "expected":
        reason = f"expected {context['expected']}, got {describe(value, names)}"
    elif kind == "missing":
        reason = "missing"
    elif kind == "extra_forbidden":
        owner = _model_at(model, loc[:-1])
        unsupported = owner.unsupported_keys if owner is not None else {}
        if loc[-1] in unsupported:
            reason = f"not supported ({unsupported[str(loc[-1])]})"
        elif owner is not None:
            reason = f"unknown key (known: {', '.join(owner.model_fields)})"
        else:
            reason = "unknown key"
    elif kind in ("model_type", "model_attributes_type", "dict_type", "mapping_type"):
        reason = f"expected {table}, got {describe(value, names)}"
    elif kind == "value_error" and "error" in context:
        reason = str(context["error"])
    else:
        reason = error["msg"]  # a check of pydantic's own, kept as it words it
    return loc, Issue(key_path(loc), reason)


def _model_at(model: type[StrictModel], loc: Loc) -> type[StrictModel] | None:
    """The model class that validates the table at `loc` (None if not a model)."""
    hint: Any = model
    for part in loc:
        hint = _unwrap(hint)
        if isinstance(hint, type) and issubclass(hint, BaseModel):
            field = hint.model_fields.get(str(part))
            if field is None:
                return None
            hint = field.annotation
        else:
            args = typing.get_args(hint)
            if not args:
                return None
            hint = args[-1] if isinstance(part, str) else args[0]
    hint = _unwrap(hint)
    return hint if isinstance(hint, type) and issubclass(hint, StrictModel) else None


def _unwrap(hint: Any) -> Any:
    while True:
        origin = typing.get_origin(hint)
        if origin is typing.Annotated:
            hint = typing.get_args(hint)[0]
        elif origin in (typing.Union, types.UnionType):
            others = [arg for arg in typing.get_args(hint) if arg is not type(None)]
            if len(others) != 1:
                return hint
            hint = others[0]
        else:
            return hint
