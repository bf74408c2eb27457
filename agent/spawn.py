"""Trampoline the agent hands to the forkserver.

The agent process itself never imports Airflow (it starts fast and stays small); the forkserver
has ``agent.child`` preloaded, so this import costs nothing in the forked child.
"""

from __future__ import annotations

import signal
from multiprocessing.connection import Connection


def standby(conn: Connection, agent_pid: int, server: str) -> None:
    """Forked ahead of need: wait for a workload, then run it. The agent closing the pipe (it is
    stopping, or died) ends the wait. Ctrl-C drains the agent; it must not kill the standby."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        workload_json = conn.recv_bytes().decode()
    except (EOFError, OSError):
        return
    finally:
        conn.close()
    from agent.child import run_workload

    run_workload(workload_json, agent_pid, server)
