"""Per-account request budgets (all keys together), in fixed clock-aligned windows.

Headers on every API response describe the binding window: the hourly one, unless the per-minute
budget has less left. `X-RateLimit-Reset` is the number of whole seconds until that window starts
afresh (a delta, not an epoch time). Requests refused with 429 do not spend budget. The unlimited
plan reports a nominal 1,000,000/hour that never runs out.

`CLINIC_SANDBOX_HOUR_SECONDS` in the sandbox's environment shortens the hourly window: a benchmark replays
a plan's hourly budget in scaled-down time (1,000 requests per 20 s) with the plan's own burst.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass

PLANS: dict[str, tuple[int | None, int | None]] = {
    "growth": (1000, 400),
    "pro": (2000, 400),
    "enterprise": (5000, 400),
    "unlimited": (None, None),
}
NOMINAL_UNLIMITED = 1_000_000
HOUR_SECONDS = float(os.environ.get("CLINIC_SANDBOX_HOUR_SECONDS", "3600"))


@dataclass(frozen=True)
class Verdict:
    allowed: bool
    limit: int
    remaining: int
    reset_seconds: int


class RateLimiter:
    def __init__(
        self,
        per_hour: int | None,
        per_minute: int | None,
        retry_after: bool = False,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.clock = clock
        self.configure(per_hour, per_minute, retry_after)

    def configure(self, per_hour: int | None, per_minute: int | None, retry_after: bool) -> None:
        self.per_hour = per_hour
        self.per_minute = per_minute
        self.retry_after = retry_after
        self._used: dict[tuple[int, int], int] = {}

    def check(self, spend: bool = True) -> Verdict:
        """Spend one request if both windows allow it (`spend=False` only reports, e.g. for a 401)."""
        now = self.clock()
        budgets = ((HOUR_SECONDS, self.per_hour), (60, self.per_minute))
        windows = [(w, budget) for w, budget in budgets if budget is not None]
        if not windows:
            return Verdict(True, NOMINAL_UNLIMITED, NOMINAL_UNLIMITED, math.ceil(3600 - now % 3600))
        state = []
        for width, budget in windows:
            key = (width, int(now // width))
            state.append((key, budget, budget - self._used.get(key, 0), math.ceil(width - now % width)))
        if all(left > 0 for _, _, left, _ in state):
            if spend:
                for key, *_ in state:
                    self._used[key] = self._used.get(key, 0) + 1
                self._used = {k: v for k, v in self._used.items() if k[1] >= int(now // k[0])}
            _, budget, left, reset = min(state, key=lambda s: s[2])
            return Verdict(True, budget, left - 1 if spend else left, reset)
        # Refused: the client must wait for the exhausted window, the longest one if both are.
        _, budget, _, reset = max((s for s in state if s[2] <= 0), key=lambda s: s[3])
        return Verdict(False, budget, 0, reset)
