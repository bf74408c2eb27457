"""How fast SubmitJob may be called (pure; the clock is passed in).

A token bucket at ``rate`` calls per second (a burst of one second's worth). When AWS throttles,
the rate halves (down to one call per second, or the configured rate if lower) and then climbs back by a tenth of the configured
rate per call that goes through: additive increase, multiplicative decrease, so a fleet of
schedulers sharing one account's SubmitJob quota settles below it instead of hammering it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

FLOOR = 1.0


@dataclass
class SubmitLimiter:
    rate: float
    """Configured calls per second; 0 = unlimited."""
    current: float = field(init=False)
    tokens: float = field(init=False)
    stamp: float | None = None

    def __post_init__(self) -> None:
        self.current = self.rate
        self.tokens = max(self.rate, FLOOR)

    def _refill(self, now: float) -> None:
        if self.stamp is not None:
            self.tokens = min(max(self.current, FLOOR), self.tokens + (now - self.stamp) * self.current)
        self.stamp = now

    def take(self, now: float) -> bool:
        """Whether one call may go now (and count it)."""
        if self.rate <= 0:
            return True
        self._refill(now)
        if self.tokens < 1:
            return False
        self.tokens -= 1
        return True

    def throttled(self) -> None:
        if self.rate > 0:
            self.current = max(min(FLOOR, self.rate), self.current / 2)
            self.tokens = min(self.tokens, 0.0)

    def succeeded(self) -> None:
        if self.rate > 0:
            self.current = min(self.rate, self.current + self.rate / 10)
