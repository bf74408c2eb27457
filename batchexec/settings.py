"""``[aws_batch_executor]`` settings, named exactly as Airflow's own AWS Batch executor names them."""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from batchexec.errors import BatchConfigError
from edgeexec.config.lookup import Lookup, build, doc

SECTION = "aws_batch_executor"
REQUIRED = ("job_queue", "job_definition", "job_name", "region_name")
ROUTE_KEYS = frozenset({"job_queue", "job_definition"})
CAMEL = {"job_queue": "jobQueue", "job_definition": "jobDefinition"}


@dataclass(frozen=True)
class Route:
    """Where one Airflow queue's tasks go: a Batch job queue and job definition."""

    job_queue: str
    job_definition: str


def _route(queue: str, value: Any, default: Route) -> Route:
    """One entry of ``queue_map``: a job queue name, or an object with job_queue/job_definition."""
    where = f"[aws_batch_executor] queue_map[{queue!r}]"
    if isinstance(value, str) and value:
        return Route(value, default.job_definition)
    if isinstance(value, Mapping) and value and set(value) <= ROUTE_KEYS \
            and all(isinstance(v, str) and v for v in value.values()):
        return Route(value.get("job_queue", default.job_queue), value.get("job_definition", default.job_definition))
    raise BatchConfigError(
        f"{where} must be a job queue name or an object with non-empty string keys among "
        f"{sorted(ROUTE_KEYS)}, got {json.dumps(value)[:200]}")


def _json_object(name: str, raw: str) -> dict[str, Any]:
    try:
        value = json.loads(raw or "{}")
    except json.JSONDecodeError as exc:
        raise BatchConfigError(
            f"[aws_batch_executor] {name} is not valid JSON ({exc}); set "
            f"AIRFLOW__AWS_BATCH_EXECUTOR__{name.upper()} to a JSON object"
        ) from None
    if not isinstance(value, dict):
        raise BatchConfigError(f"[aws_batch_executor] {name} must be a JSON object")
    return value


@dataclass(frozen=True)
class BatchSettings:
    job_queue: str = field(default="", metadata=doc("Required. The AWS Batch job queue jobs are submitted to."))
    job_definition: str = field(default="", metadata=doc("Required. Job definition (name, name:revision or ARN)."))
    job_name: str = field(default="", metadata=doc("Required. Name given to every submitted job."))
    region_name: str = field(default="", metadata=doc("Required. AWS region of the queue."))
    aws_conn_id: str = field(default="aws_default", metadata=doc("Airflow connection with AWS credentials."))
    submit_job_kwargs: str = field(default="{}", metadata=doc("JSON object merged into every SubmitJob call."))
    max_submit_job_attempts: int = field(
        default=3, metadata=doc("SubmitJob attempts per task, shared with jobs Batch fails before they start.")
    )
    check_health_on_startup: bool = field(
        default=True, metadata=doc("At start-up, call DescribeJobs and check that every job queue is ENABLED and VALID.")
    )
    poll_interval_min: float = field(default=2.0, metadata=doc("Seconds between DescribeJobs polls while busy."))
    poll_interval_max: float = field(default=30.0, metadata=doc("Poll interval reached while nothing changes."))
    queue_map: str = field(default="{}", metadata=doc(
        "JSON object: Airflow queue -> Batch job queue, or -> {\"job_queue\": ..., \"job_definition\": ...}. "
        "Tasks of an unmapped queue go to job_queue with job_definition."))
    runnable_timeout: float = field(default=0.0, metadata=doc(
        "Seconds a job may wait RUNNABLE (no compute to place it) before it is terminated and submitted again "
        "from the attempt budget, then failed saying so; 0 = wait (task_queued_timeout still applies)."))
    submit_rate: float = field(default=20.0, metadata=doc(
        "SubmitJob calls per second at most (halved while AWS throttles, then recovering); 0 = no limit."))

    @functools.cached_property
    def extra_submit_kwargs(self) -> dict[str, Any]:
        return _json_object("submit_job_kwargs", self.submit_job_kwargs)

    @property
    def default_route(self) -> Route:
        return Route(self.job_queue, self.job_definition)

    @functools.cached_property
    def routes(self) -> dict[str, Route]:
        """Airflow queue -> Route, from ``queue_map``."""
        default = self.default_route
        return {str(q): _route(str(q), v, default) for q, v in _json_object("queue_map", self.queue_map).items()}

    def route(self, queue: str) -> Route:
        return self.routes.get(queue, self.default_route)

    @functools.cached_property
    def mapped_kwargs(self) -> dict[str, dict[str, str]]:
        """Airflow queue -> the SubmitJob keys its queue_map entry sets, and only those: an entry
        naming a job queue leaves the job definition to submit_job_kwargs or the default."""
        out: dict[str, dict[str, str]] = {}
        for queue, value in _json_object("queue_map", self.queue_map).items():
            entry = {"job_queue": value} if isinstance(value, str) else dict(value)
            out[str(queue)] = {CAMEL[k]: v for k, v in entry.items()}
        return out

    @classmethod
    def load(cls, lookup: Lookup) -> BatchSettings:
        settings = build(cls, SECTION, lookup)
        missing = [name for name in REQUIRED if not getattr(settings, name)]
        if missing:
            raise BatchConfigError("; ".join(
                f"[aws_batch_executor] {m} is required: set it in airflow.cfg or as "
                f"AIRFLOW__AWS_BATCH_EXECUTOR__{m.upper()}" for m in missing))
        if settings.max_submit_job_attempts < 1:
            raise BatchConfigError("[aws_batch_executor] max_submit_job_attempts must be at least 1")
        for name in ("poll_interval_min", "poll_interval_max", "runnable_timeout", "submit_rate"):
            if getattr(settings, name) < 0:
                raise BatchConfigError(f"[aws_batch_executor] {name} must not be negative")
        settings.extra_submit_kwargs  # noqa: B018 - validate the JSON at start-up, not at the first task
        settings.routes  # noqa: B018 - and the queue map
        return settings
