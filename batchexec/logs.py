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

from batchexec.explain import container, mapping

DEFAULT_GROUP = "/aws/batch/job"
MAX_PAGES = 100
"""GetLogEvents calls per view at most: an empty page does not always mean the end of a stream."""
MAX_EVENTS = 10_000
"""Lines read per view: a log past this is cut, saying so, rather than paged for minutes."""
LogResponse = tuple[list[str], list[str]]


def _stream(desc: Mapping[str, Any]) -> tuple[str, str]:
    """(log group, log stream) of a job: the awslogs group its job definition names, or Batch's."""
    found = container(desc)
    group = mapping(mapping(found.get("logConfiguration")).get("options")).get("awslogs-group")
    return str(group or DEFAULT_GROUP), str(found.get("logStreamName") or "")


def read_live(batch: Any, logs: Any, job_id: str, max_events: int = MAX_EVENTS) -> LogResponse:
    """(sources, [text]) of one Batch job's log stream; AWS errors become a source line, never raise."""
    try:
        jobs = mapping(batch.describe_jobs(jobs=[job_id])).get("jobs")
        desc = mapping(jobs[0]) if isinstance(jobs, list) and jobs else {}
        if not desc:
            return [f"batchexec: AWS Batch has no job {job_id}"], []
        group, stream = _stream(desc)
        if not stream:
            return [f"batchexec: AWS Batch job {job_id} is {desc.get('status')}; no log stream yet"], []
        events: list[Mapping[str, Any]] = []
        token = None
        for _ in range(MAX_PAGES):
            kwargs: dict[str, Any] = {"logGroupName": group, "logStreamName": stream, "startFromHead": True}
            if token:
                kwargs["nextToken"] = token
            page = mapping(logs.get_log_events(**kwargs))
            got = page.get("events")
            events += [e for e in got if isinstance(e, Mapping)] if isinstance(got, list) else []
            if len(events) >= max_events or page.get("nextForwardToken") in (None, token):
                break  # AWS answers the same token at the end of a stream
            token = page["nextForwardToken"]
    except (ClientError, BotoCoreError) as exc:
        return [f"batchexec: could not read the log of AWS Batch job {job_id}: {exc}"], []
    lines = [str(e.get("message", "")) for e in events[:max_events]]
    if len(events) >= max_events:
        lines.append(f"batchexec: the first {max_events} lines are shown; the rest is in CloudWatch Logs {group}/{stream}")
    source = f"batchexec: AWS Batch job {job_id}, CloudWatch Logs {group}/{stream}"
    return [source], ["\n".join(lines) + "\n"] if lines else []
