"""Injected failures, drawn from a seeded RNG so a run repeats exactly.

Per API request (never `/_sandbox/`), one draw picks at most one fault, in this order of the rates:
`rate_429` (429 in the error envelope, nothing done), `rate_5xx` (503, nothing done), `rate_reset`
(the request IS processed, then the socket is closed without an answer: the client cannot know
whether its write happened), `rate_slow` (the answer comes after `slow_seconds`).
"""

from __future__ import annotations

import random
from dataclasses import asdict, dataclass
from typing import Any, Literal

from clinic_pipeline.sandbox.errors import ApiError

Fault = Literal["429", "5xx", "reset", "slow"]


@dataclass
class FaultConfig:
    rate_429: float = 0.0
    rate_5xx: float = 0.0
    rate_reset: float = 0.0
    rate_slow: float = 0.0
    slow_seconds: float = 1.0
    seed: int = 0


class FaultInjector:
    def __init__(self) -> None:
        self.configure(FaultConfig())

    def configure(self, config: FaultConfig) -> None:
        rates = (config.rate_429, config.rate_5xx, config.rate_reset, config.rate_slow)
        if any(r < 0 for r in rates) or sum(rates) > 1 or config.slow_seconds < 0:
            raise ApiError(400, "fault rates must be >= 0 and sum to at most 1")
        self.config = config
        self._rng = random.Random(config.seed)

    @staticmethod
    def parse(body: Any) -> FaultConfig:
        if not isinstance(body, dict):
            raise ApiError(400, "faults body must be an object")
        known = set(asdict(FaultConfig()))
        unknown = sorted(set(body) - known)
        if unknown:
            raise ApiError(400, f"unknown fault settings: {', '.join(unknown)}")
        try:
            return FaultConfig(**{k: (int(v) if k == "seed" else float(v)) for k, v in body.items()})
        except (TypeError, ValueError):
            raise ApiError(400, "fault settings must be numbers") from None

    def draw(self) -> Fault | None:
        c = self.config
        if not (c.rate_429 or c.rate_5xx or c.rate_reset or c.rate_slow):
            return None
        roll = self._rng.random()
        for fault, rate in (("429", c.rate_429), ("5xx", c.rate_5xx), ("reset", c.rate_reset), ("slow", c.rate_slow)):
            if roll < rate:
                return fault  # type: ignore[return-value]
            roll -= rate
        return None
