"""Injected failures, drawn from a seeded RNG so a run repeats exactly.

Per API request (never `/_sandbox/`), one draw picks at most one fault, in this order of the rates:
`rate_429` (429 in the error envelope, nothing done), `rate_5xx` (503, nothing done), `rate_reset`
(the request IS processed, then the socket is closed without an answer: the client cannot know
whether its write happened), `rate_slow` (the answer comes after `slow_seconds`), `rate_truncate`
(the request IS processed and answered with its own 2xx status, but the body is cut off part-way,
at a point drawn from the same RNG, with a Content-Length honest to the bytes sent). `only` limits the
faults to the requests of one endpoint (`POST /tasks`): a fault that persists there while the rest answers.

The truncation is what a buffering proxy hands on when its upstream connection dies mid-body and the
upstream's body was close-delimited (nginx speaks HTTP/1.0 upstream by default): the proxy takes the
early end for the real one and frames what it got correctly, so nothing below the JSON parser can tell.
A body cut short under a dishonest Content-Length is a transport error to any client, as `rate_reset`
already is; this fault is the one only the JSON parser can catch. Error answers are not cut.
"""

from __future__ import annotations

import random
from dataclasses import asdict, dataclass
from typing import Any, Literal

from clinic_pipeline.sandbox.errors import ApiError

Fault = Literal["429", "5xx", "reset", "slow", "truncate"]


@dataclass
class FaultConfig:
    rate_429: float = 0.0
    rate_5xx: float = 0.0
    rate_reset: float = 0.0
    rate_slow: float = 0.0
    rate_truncate: float = 0.0
    slow_seconds: float = 1.0
    seed: int = 0
    # Only requests whose `METHOD /path/template` starts with this meet faults (a fault that persists on one
    # endpoint while the others answer); empty: every request.
    only: str = ""


class FaultInjector:
    def __init__(self) -> None:
        self.configure(FaultConfig())

    def configure(self, config: FaultConfig) -> None:
        rates = (config.rate_429, config.rate_5xx, config.rate_reset, config.rate_slow, config.rate_truncate)
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
            return FaultConfig(
                **{k: (int(v) if k == "seed" else str(v) if k == "only" else float(v)) for k, v in body.items()}
            )
        except (TypeError, ValueError):
            raise ApiError(400, "fault settings must be numbers") from None

    def draw(self, endpoint: str) -> Fault | None:
        """The fault for one request to `endpoint` (`METHOD /path/template`), if any."""
        c = self.config
        if not endpoint.startswith(c.only):
            return None
        rates: tuple[tuple[Fault, float], ...] = (
            ("429", c.rate_429),
            ("5xx", c.rate_5xx),
            ("reset", c.rate_reset),
            ("slow", c.rate_slow),
            ("truncate", c.rate_truncate),
        )
        if not any(rate for _, rate in rates):
            return None
        roll = self._rng.random()
        for fault, rate in rates:
            if roll < rate:
                return fault
            roll -= rate
        return None

    def cut(self, body: bytes) -> bytes:
        """A strict, non-empty prefix. The sandbox answers objects, arrays and `true`, none of whose
        strict prefixes parse; an empty body would read as "no content" to some clients, not as broken."""
        return body[: self._rng.randrange(1, len(body))] if len(body) > 1 else body
