"""Every state a job or an agent can be in, and what moves it where: the one home of both state
machines, as tables (pure).

Job states live in Redis and change only inside the Lua scripts (edgeexec/store/lua/), each change
atomic. ``JOB_TRANSITIONS`` names, for every allowed (from, to), the scripts that perform it. Two
tests hold the scripts to it (a new state or a new transition starts here): tests/test_states.py
reads the scripts and fails on a state the tables do not define or on a state a script can move
jobs into that its entries do not name; tests/test_store_lua.py checks every job state change
every script call makes in those tests against the table, from and to.

Agent states use the Edge provider's vocabulary operators already know. A connected agent derives
its own state from (has jobs, draining, maintenance) with ``AGENT_STATE_TABLE`` and reports it with
every heartbeat; the store sets the others (``AGENT_STATE_WRITERS``) when the agent cannot speak for
itself: after its session ended, when the reaper declared it lost, or from an operator's command
recorded while it was away.
"""

from __future__ import annotations

from enum import StrEnum


class JobState(StrEnum):
    """States of one job as the store and the agent know it."""

    PENDING = "pending"
    """Queued in Redis: in exactly one pending zset, waiting for an agent with free slots."""
    ASSIGNED = "assigned"
    """Placed on an agent (its slots are taken); the agent has not yet claimed it."""
    RUNNING = "running"
    """Claimed by the agent: its process is started exactly once, on that agent."""
    SUCCESS = "success"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def terminal(self) -> bool:
        return self in TERMINAL_JOB_STATES


TERMINAL_JOB_STATES = frozenset({JobState.SUCCESS, JobState.FAILED, JobState.CANCELLED})
"""A terminal job never changes again; its workload (and token) is dropped and it expires after job_ttl."""

NEW = None
"""The 'from' of a job that did not exist before the transition."""

JOB_TRANSITIONS: dict[tuple[JobState | None, JobState], frozenset[str]] = {
    (NEW, JobState.PENDING): frozenset({"submit"}),
    # placed on the agent with the most free slots (lib.lua place/claim)
    (JobState.PENDING, JobState.ASSIGNED): frozenset({"submit", "reject", "finish", "heartbeat", "register", "reap"}),
    # back to pending: the agent refused it, reconnected without it, or was declared lost
    (JobState.ASSIGNED, JobState.PENDING): frozenset({"reject", "register", "reap"}),
    # the agent's claim (accept), or a reconnecting agent that reports it running
    (JobState.ASSIGNED, JobState.RUNNING): frozenset({"accept", "register"}),
    (JobState.RUNNING, JobState.SUCCESS): frozenset({"finish"}),
    (JobState.RUNNING, JobState.FAILED): frozenset({"finish", "register"}),
    (JobState.RUNNING, JobState.CANCELLED): frozenset({"finish", "register"}),
    # a reconnecting agent lists as unstarted a job Redis recorded running (its start was lost):
    # it never ran there, so it goes back to pending (or is cancelled, if revoked meanwhile)
    (JobState.RUNNING, JobState.PENDING): frozenset({"register"}),
    # finish.lua ends a job in whatever state it was left: the executor fails one whose worker is
    # gone; an agent reports only jobs it started, but the script accepts its own assigned ones
    (JobState.PENDING, JobState.FAILED): frozenset({"finish"}),
    (JobState.ASSIGNED, JobState.FAILED): frozenset({"finish"}),
    (JobState.ASSIGNED, JobState.SUCCESS): frozenset({"finish"}),
    (JobState.PENDING, JobState.SUCCESS): frozenset({"finish"}),
    (JobState.PENDING, JobState.CANCELLED): frozenset({"cancel", "submit", "finish"}),
    (JobState.ASSIGNED, JobState.CANCELLED): frozenset({"cancel", "accept", "register", "finish"}),
}


def job_transition_allowed(old: JobState | None, new: JobState) -> bool:
    return (old, new) in JOB_TRANSITIONS


def scripts_moving_to(state: JobState) -> frozenset[str]:
    """The scripts that can move a job into ``state``."""
    return frozenset().union(*(by for (_, to), by in JOB_TRANSITIONS.items() if to == state))


class AgentState(StrEnum):
    STARTING = "starting"
    IDLE = "idle"
    RUNNING = "running"
    MAINTENANCE_PENDING = "maintenance pending"
    """Maintenance was asked for; running jobs finish, no new ones come."""
    MAINTENANCE_MODE = "maintenance mode"
    TERMINATING = "terminating"
    """Draining (SIGINT, SIGTERM, drain or shutdown command) with jobs still running."""
    OFFLINE = "offline"
    OFFLINE_MAINTENANCE = "offline maintenance"
    UNKNOWN = "unknown"
    """The reaper declared it lost: no heartbeat within its liveness window."""

    @property
    def in_maintenance(self) -> bool:
        return "maintenance" in self.value


AGENT_STATE_TABLE: dict[tuple[bool, bool, bool], AgentState] = {
    # (has_jobs, draining, maintenance) -> state, as a connected agent derives it
    (False, False, False): AgentState.IDLE,
    (True, False, False): AgentState.RUNNING,
    (False, False, True): AgentState.MAINTENANCE_MODE,
    (True, False, True): AgentState.MAINTENANCE_PENDING,
    (True, True, False): AgentState.TERMINATING,
    (True, True, True): AgentState.TERMINATING,
    (False, True, False): AgentState.OFFLINE,
    (False, True, True): AgentState.OFFLINE_MAINTENANCE,
}

ACCEPTING_STATES = frozenset({AgentState.IDLE, AgentState.RUNNING})
"""Agent states in which the gateway hands out new jobs; every other state stops dispatch."""

REPORTED = "reported"
"""Stands for 'whatever state the agent reports' in AGENT_STATE_WRITERS."""

AGENT_STATE_WRITERS: dict[AgentState | str, frozenset[str]] = {
    REPORTED: frozenset({"register", "heartbeat"}),
    # a hello in maintenance recorded as such, or an operator's 'maintenance off' recorded while away
    AgentState.MAINTENANCE_PENDING: frozenset({"register"}),
    AgentState.IDLE: frozenset({"register"}),
    # the session ended (disconnect), or an operator's maintenance command for an offline agent
    AgentState.OFFLINE: frozenset({"disconnect", "control"}),
    AgentState.OFFLINE_MAINTENANCE: frozenset({"disconnect", "control"}),
    AgentState.UNKNOWN: frozenset({"reap"}),
}
"""Who writes each agent state into the agent's record (scripts by name; ``control`` is the
gateway's control endpoint, edgeexec/gateway/control.py)."""


def derive_agent_state(*, has_jobs: bool, draining: bool, maintenance: bool) -> AgentState:
    return AGENT_STATE_TABLE[(has_jobs, draining, maintenance)]
