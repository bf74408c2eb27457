"""Trampoline the agent hands to the forkserver.

The agent process itself never imports Airflow (it starts fast and stays small); the forkserver
has ``agent.child`` preloaded, so this import costs nothing in the forked child.
"""

from __future__ import annotations


def run(workload_json: str, agent_pid: int, server: str) -> None:
    from agent.child import run_workload

    run_workload(workload_json, agent_pid, server)


def ready() -> None:
    """A no-op job: its start returns once the forkserver has finished its preload."""
