"""Where scripts get *now* from: Redis' own clock in production, an explicit time in tests.

Liveness compares times written by different hosts (gateways, schedulers); host clocks drift
and skew, so every script reads Redis' clock (``TIME``) unless a test passes a time. Host clocks
are used only for figures that never meet another host's (a scheduler's own timers).
"""

from __future__ import annotations

import time
from collections.abc import Callable

Clock = Callable[[], int | str]
"""What a store calls for ARGV[2]: an int (milliseconds, tests) or '' (Redis' clock)."""


def redis_time() -> str:
    """The script argument meaning "use Redis' own clock" (see lua/lib.lua)."""
    return ""


def now_ms() -> int:
    """This host's wall clock, for records only this host compares (token creation times)."""
    return int(time.time() * 1000)
