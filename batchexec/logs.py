"""A running Batch job's log, read from its CloudWatch Logs stream for Airflow's log view.

The entrypoint runs the task with its logs on stdout, which the awslogs driver (Batch's
default) ships to CloudWatch Logs as they are written, so the stream is the task's live log.
Finished tries are served by Airflow's remote logging as before: Airflow asks the executor only
while a task runs.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

DEFAULT_GROUP = "/aws/batch/job"
MAX_EVENTS = 10_000
"""Lines read per view: a log past this is cut, saying so, rather than paged for minutes."""
LogResponse = tuple[list[str], list[str]]


def _stream(desc: Mapping[str, Any]) -> tuple[str, str]:
    raw_container, raw_attempts = desc.get("container"), desc.get("attempts")
    container: Mapping[str, Any] = raw_container if isinstance(raw_container, Mapping) else {}
    attempts: list[Any] = raw_attempts if isinstance(raw_attempts, list) else []
    stream = container.get("logStreamName") or next(
        (a.get("container", {}).get("logStreamName") for a in reversed(attempts)
         if isinstance(a, Mapping) and a.get("container", {}).get("logStreamName")), None)
    options = (container.get("logConfiguration") or {}).get("options") or {}
    return str(options.get("awslogs-group") or DEFAULT_GROUP), str(stream or "")


def read_live(batch: Any, logs: Any, job_id: str, max_events: int = MAX_EVENTS) -> LogResponse:
    """(sources, [text]) of one Batch job's log stream; AWS errors become a source line, never raise."""
    try:
        found = batch.describe_jobs(jobs=[job_id]).get("jobs") or []
        if not found:
            return [f"batchexec: AWS Batch has no job {job_id}"], []
        group, stream = _stream(found[0])
        if not stream:
            return [f"batchexec: AWS Batch job {job_id} is {found[0].get('status')}; no log stream yet"], []
        events: list[dict[str, Any]] = []
        token = None
        while len(events) < max_events:
            kwargs: dict[str, Any] = {"logGroupName": group, "logStreamName": stream, "startFromHead": True}
            if token:
                kwargs["nextToken"] = token
            page = logs.get_log_events(**kwargs)
            events += page.get("events") or []
            if not page.get("events") or page.get("nextForwardToken") in (None, token):
                break
            token = page["nextForwardToken"]
    except (ClientError, BotoCoreError) as exc:
        return [f"batchexec: could not read the log of AWS Batch job {job_id}: {exc}"], []
    lines = [str(e.get("message", "")) for e in events[:max_events]]
    if len(events) >= max_events:
        lines.append(f"batchexec: the first {max_events} lines are shown; the rest is in CloudWatch Logs {group}/{stream}")
    source = f"batchexec: AWS Batch job {job_id}, CloudWatch Logs {group}/{stream}"
    return [source], ["\n".join(lines) + "\n"] if lines else []
