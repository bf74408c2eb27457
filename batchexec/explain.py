"""Why an AWS Batch job failed, in words a DAG author can act on (pure: a DescribeJobs entry in).

AWS spreads the answer over ``statusReason`` (the job), ``container.reason`` and ``exitCode`` (the
container, also on each attempt). The same few causes account for most failures, and each has a
different fix, so the explanation names the cause first and keeps AWS's own words after it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any


class Cause(StrEnum):
    OUT_OF_MEMORY = "out of memory"
    HOST_TERMINATED = "host terminated"
    NEVER_STARTED = "never started"
    TIMEOUT = "timed out"
    TERMINATED = "terminated"
    IMAGE = "image could not be pulled"
    EXIT_CODE = "exit code"
    UNKNOWN = "unknown"


ADVICE = {
    Cause.OUT_OF_MEMORY: "give the task more memory (executor_config containerOverrides.resourceRequirements MEMORY)",
    Cause.HOST_TERMINATED: "the instance went away (a Spot reclaim or a scale-in); Airflow's retries run it again",
    Cause.NEVER_STARTED: "the container never ran: check the job queue's compute environments and the job definition",
    Cause.TIMEOUT: "the job definition's or executor_config's timeout ended it",
    Cause.TERMINATED: "TerminateJob ended it (Airflow revoked the task, or an operator did)",
    Cause.IMAGE: "check the job definition's image name and the execution role's ECR permissions",
    Cause.EXIT_CODE: "the task's process exited with this code; the task log above says why",
    Cause.UNKNOWN: "AWS Batch gave no reason",
}


@dataclass(frozen=True)
class Failure:
    cause: Cause
    text: str
    """One line: the cause, AWS's words and the exit code, e.g. ``out of memory: OutOfMemoryError:
    Container killed due to memory usage; exit code 137``."""
    exit_code: int | None
    started: bool


def mapping(value: Any) -> Mapping[str, Any]:
    """AWS's answer as parsed JSON: a field that should be an object may be anything."""
    return value if isinstance(value, Mapping) else {}


def _attempts(desc: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    attempts = desc.get("attempts")
    return [a for a in attempts if isinstance(a, Mapping)] if isinstance(attempts, list) else []


def container(desc: Mapping[str, Any]) -> Mapping[str, Any]:
    """The job's container, filled in from its last attempt's (both appear in AWS's answer)."""
    attempts = _attempts(desc)
    merged = dict(mapping(attempts[-1].get("container"))) if attempts else {}
    merged.update({k: v for k, v in mapping(desc.get("container")).items() if v is not None})
    return merged


def exit_code(desc: Mapping[str, Any]) -> int | None:
    code = container(desc).get("exitCode")
    try:
        return None if code is None else int(code)
    except (TypeError, ValueError):
        return None


def started(desc: Mapping[str, Any]) -> bool:
    """Whether a container of this job ever started (a start time, or an exit code, anywhere)."""
    return bool(desc.get("startedAt")) or any(
        a.get("startedAt") or mapping(a.get("container")).get("exitCode") is not None for a in _attempts(desc))


def _cause(status_reason: str, container_reason: str, code: int | None, ran: bool) -> Cause:
    both = f"{status_reason} {container_reason}".lower()
    if "outofmemory" in both or "out of memory" in both or "oomkilled" in both:
        return Cause.OUT_OF_MEMORY
    if "cannotpullcontainer" in both or "pull image" in both:
        return Cause.IMAGE
    if ran and ("duration exceeded" in both or "exceeded timeout" in both):
        return Cause.TIMEOUT
    if "host ec2" in both or "spot instance" in both or ("terminated" in both and ("instance" in both or "host" in both)):
        return Cause.HOST_TERMINATED
    if "terminat" in both or "revoked" in both:
        return Cause.TERMINATED
    if not ran:
        return Cause.NEVER_STARTED
    if code == 137 and not status_reason:
        return Cause.OUT_OF_MEMORY  # SIGKILL with no other reason: what the OOM killer leaves
    if code is not None:
        return Cause.EXIT_CODE
    return Cause.UNKNOWN


def explain(desc: Mapping[str, Any]) -> Failure:
    """The cause of a FAILED job, from one DescribeJobs entry (any field may be missing)."""
    status_reason = str(desc.get("statusReason") or "")
    container_reason = str(container(desc).get("reason") or "")
    code, ran = exit_code(desc), started(desc)
    cause = _cause(status_reason, container_reason, code, ran)
    words = [w for w in (status_reason, container_reason) if w]
    if code is not None:
        words.append(f"exit code {code}")
    text = f"{cause.value}: {'; '.join(words) or 'AWS Batch reported the job FAILED'}"
    return Failure(cause, text, code, ran)


def advice(cause: Cause) -> str:
    return ADVICE[cause]
