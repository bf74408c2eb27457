"""Task logs as agents streamed them, read from Redis for Airflow's log reader.

Two entry points feed Airflow: ``EdgeExecutor.get_task_log`` for running tasks, and
``EdgeexecTaskLogIO`` (a RemoteLogIO, enabled by ``[logging] logging_config_class =
edgeexec.logging_config.LOGGING_CONFIG`` on the API server) for finished ones.
"""

from __future__ import annotations

from typing import Any

import redis

from edgeexec.airflow.teams import edge_teams
from edgeexec.config.lookup import airflow_lookup
from edgeexec.config.settings import SECTION, ExecutorSettings
from edgeexec.dispatch import task_ref
from edgeexec.errors import ConfigError
from edgeexec.store.redis_url import connect

LogResponse = tuple[list[str], list[str]]


def read(ti_id: Any, try_number: int, team: str | None = None) -> LogResponse:
    """(sources, [log text]) for one try, or ([], []) if no agent streamed it. Without ``team``
    the task's team is not known (Airflow asks the default executor, or reads a finished log), so
    every fleet there is (teams.py) is looked at: task instance ids are unique, at most one has
    it. A fleet whose Redis or settings fail does not hide the others'."""
    failed: LogResponse = [], []
    for candidate in [team] if team else edge_teams():
        try:
            found = _read(ti_id, try_number, candidate)
        except ConfigError as exc:  # one team's broken overrides do not hide the others' logs
            found = [f"edgeexec: team {candidate!r}: {exc}"], []
        if found[1]:
            return found
        if found[0] and not failed[0]:
            failed = found
    return failed


def _read(ti_id: Any, try_number: int, team: str) -> LogResponse:
    settings = ExecutorSettings.load(airflow_lookup(SECTION, team or None), {"team": team})
    # bytes, not decoded by the client: a log holds whatever bytes the task wrote (stored exactly);
    # only this view replaces invalid UTF-8, so reading a log can never fail on its content
    client = connect(settings.redis_url, decode_responses=False, socket_timeout=5)
    keys = settings.keys()
    try:
        raw_job: Any = client.get(keys.ref(task_ref(ti_id, try_number)))
        job = raw_job.decode() if raw_job else None
        raw: Any = client.get(keys.log(job)) if job else None
        fields: Any = client.hmget(keys.job(job), "agent", "blocked", "state", "reason") if job else [None] * 4
    except redis.RedisError as exc:
        return [f"edgeexec: could not read the task log from Redis: {exc}"], []
    finally:
        client.close()
    text = raw.decode(errors="replace") if raw else ""
    agent, blocked, state, reason = (f.decode(errors="replace") if f else None for f in fields)
    if not text and blocked:
        # it never reached an agent: say why instead of an empty log
        return [f"edgeexec: job {job} never started"], [f"edgeexec: this task {blocked} (job {state}: {reason or '-'})\n"]
    if not text:
        return [], []
    return [f"edgeexec: log streamed by agent {agent} (job {job})"], [str(text)]


class EdgeexecTaskLogIO:
    """Airflow RemoteLogIO serving finished tasks' logs from Redis (agents upload nothing themselves:
    they already streamed the log through the gateway while the task ran)."""

    processors: tuple[Any, ...] = ()

    def upload(self, path: Any, ti: Any = None) -> None:
        return None

    def read(self, relative_path: str, ti: Any) -> LogResponse:
        if str(getattr(ti, "state", "")) == "running":
            return [], []  # EdgeExecutor.get_task_log serves running tasks
        ti_id = getattr(ti, "task_instance_id", None) or ti.id
        return read(ti_id, int(ti.try_number))
