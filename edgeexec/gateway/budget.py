"""Per-session budgets: token buckets, pure (the caller passes the time), so tests need no clock.

A session that overspends is closed with ``OVER_BUDGET`` (4429); only that agent is affected, and a
well-behaved agent never comes close (the defaults are several times what the benchmarks send).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

BURST_SECONDS = 5.0


@dataclass
class TokenBucket:
    """``rate`` units per second with bursts of ``rate * BURST_SECONDS``; ``rate <= 0`` means unlimited."""

    rate: float
    level: float = field(default=-1.0)
    stamp: float = 0.0

    @property
    def capacity(self) -> float:
        return self.rate * BURST_SECONDS

    def spend(self, amount: float, now: float) -> bool:
        """Take ``amount`` if the bucket holds it; False (and nothing taken) if it does not."""
        if self.rate <= 0:
            return True
        if self.level < 0:
            self.level, self.stamp = self.capacity, now
        self.level = min(self.capacity, self.level + (now - self.stamp) * self.rate)
        self.stamp = now
        if amount > self.level:
            return False
        self.level -= amount
        return True


@dataclass
class FailureWindow:
    """Refused logins per client address in a sliding minute: guessing tokens gets slow, not free."""

    limit: int
    window: float = 60.0
    seen: dict[str, deque[float]] = field(default_factory=dict)

    def blocked(self, client: str, now: float) -> bool:
        if self.limit <= 0:
            return False
        times = self.seen.get(client)
        if times is None:
            return False
        while times and now - times[0] > self.window:
            times.popleft()
        if not times:
            del self.seen[client]
            return False
        return len(times) >= self.limit

    def record(self, client: str, now: float) -> None:
        if self.limit <= 0:
            return
        if len(self.seen) > 100_000:  # a scan from many addresses must not grow this without bound
            self.seen.clear()
        self.seen.setdefault(client, deque(maxlen=self.limit)).append(now)
