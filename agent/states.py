"""The agent's state as one table, in the Edge provider's vocabulary operators already know.

The state is derived, never stored: (has jobs, draining, maintenance) -> state. The gateway only
dispatches to agents whose state is in ``edgeexec.protocol.ACCEPTING_STATES``.
"""

from __future__ import annotations

STARTING = "starting"
IDLE = "idle"
RUNNING = "running"
MAINTENANCE_PENDING = "maintenance pending"
MAINTENANCE_MODE = "maintenance mode"
TERMINATING = "terminating"
OFFLINE = "offline"
OFFLINE_MAINTENANCE = "offline maintenance"

#: (has_jobs, draining, maintenance) -> state
STATE_TABLE: dict[tuple[bool, bool, bool], str] = {
    (False, False, False): IDLE,
    (True, False, False): RUNNING,
    (False, False, True): MAINTENANCE_MODE,
    (True, False, True): MAINTENANCE_PENDING,
    (True, True, False): TERMINATING,
    (True, True, True): TERMINATING,
    (False, True, False): OFFLINE,
    (False, True, True): OFFLINE_MAINTENANCE,
}


def derive(*, has_jobs: bool, draining: bool, maintenance: bool) -> str:
    return STATE_TABLE[(has_jobs, draining, maintenance)]
