"""Pure reconnect policy: how long to wait, and whether an error is worth retrying at all."""

from __future__ import annotations

from edgeexec.protocol import FATAL_CLOSE_CODES

RETRYABLE_HTTP = frozenset({408, 429, 500, 502, 503, 504})


def backoff_delay(attempt: int, jitter: float, *, base: float = 0.5, cap: float = 30.0) -> float:
    """Exponential backoff with "equal jitter" (half fixed, half random): a fleet restarting at once
    does not reconnect in lockstep, and no agent retries sooner than half the ceiling.

    ``jitter`` is a number in [0, 1) supplied by the caller (random.random() in production).
    """
    ceiling = min(cap, base * 2.0 ** min(attempt, 16))
    return ceiling / 2 + ceiling / 2 * jitter


def http_status_is_fatal(status: int) -> bool:
    """401/403/404/400 mean a configuration error; hammering the gateway will not fix them."""
    return 400 <= status < 500 and status not in RETRYABLE_HTTP


def close_code_is_fatal(code: int | None) -> bool:
    """The gateway closed us for a reason only a configuration change fixes."""
    return code in FATAL_CLOSE_CODES
