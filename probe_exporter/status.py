"""Each target's last state and the last refused requests, for the status page.

Updated when a probe ends or a request is refused, in constant time: the page reads it without
scanning the history. Bounded: one entry per listed target and module (the config bounds them),
plus the `ad_hoc_limit` allowed addresses probed most recently, and the last `refusals_limit`
refusals with their text cut to TEXT_LIMIT characters.
"""

from __future__ import annotations

from collections import Counter, OrderedDict, deque
from collections.abc import Container, Iterator
from dataclasses import dataclass

TEXT_LIMIT = 300  # characters kept of a failure's reason or of a refused request's target


def cut(text: str, limit: int = TEXT_LIMIT) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


@dataclass(slots=True)
class TargetState:
    """One target's (and module's) last probe and last failure; times are time.time()."""

    target: str
    module: str
    up: bool
    since: float  # when it last turned up or down (or was first probed) as far as seen here
    last_at: float
    last_duration: float
    last_probe: int | None  # the probe's id in the history (/logs?id=)
    last_success_at: float | None = None
    last_failure_at: float | None = None
    failure_stage: str | None = None
    failure_reason: str | None = None
    failure_probe: int | None = None


@dataclass(frozen=True, slots=True)
class Refusal:
    at: float
    reason: str  # bad_request, forbidden or overload
    target: str | None  # as the client sent it (cut): attacker-controlled text
    message: str  # what the client was told


class StatusBoard:
    def __init__(self, ad_hoc_limit: int = 100, refusals_limit: int = 20) -> None:
        self.ad_hoc_limit = ad_hoc_limit
        self._listed: dict[tuple[str, str], TargetState] = {}
        self._ad_hoc: OrderedDict[tuple[str, str], TargetState] = OrderedDict()
        self.refusals: deque[Refusal] = deque(maxlen=refusals_limit)
        self.refusal_counts: Counter[str] = Counter()

    def probe_ended(
        self,
        target: str,
        module: str,
        *,
        listed: bool,
        success: bool,
        stage: str | None,
        reason: str | None,
        duration: float,
        probe_id: int | None,
        at: float,
    ) -> None:
        key = (target, module)
        states = self._listed if listed else self._ad_hoc
        state = states.get(key)
        if state is None:
            state = states[key] = TargetState(target, module, success, at, at, duration, probe_id)
            if not listed and len(self._ad_hoc) > self.ad_hoc_limit:
                self._ad_hoc.popitem(last=False)
        elif not listed:
            self._ad_hoc.move_to_end(key)
        if state.up != success:
            state.up, state.since = success, at
        state.last_at, state.last_duration, state.last_probe = at, duration, probe_id
        if success:
            state.last_success_at = at
        else:
            state.last_failure_at, state.failure_probe = at, probe_id
            state.failure_stage = stage
            state.failure_reason = cut(reason) if reason else None

    def refused(self, reason: str, target: str | None, message: str, at: float) -> None:
        self.refusal_counts[reason] += 1
        self.refusals.append(
            Refusal(at, reason, None if target is None else cut(target), cut(message))
        )

    def keep(self, targets: Container[str], modules: Container[str]) -> None:
        """After a reload: forgets the modules gone, listed targets no longer listed and
        ad-hoc addresses now listed."""
        for states, listed in ((self._listed, True), (self._ad_hoc, False)):
            for key in [k for k in states if k[1] not in modules or (k[0] in targets) != listed]:
                del states[key]

    def listed(self, target: str, module: str) -> TargetState | None:
        return self._listed.get((target, module))

    def ad_hoc(self) -> Iterator[TargetState]:
        """The ad-hoc addresses, the most recently probed first."""
        return reversed(self._ad_hoc.values())
