"""``[aws_batch_executor]`` settings, named exactly as Airflow's own AWS Batch executor names them."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from batchexec.errors import BatchConfigError
from edgeexec.config.lookup import Lookup, build, doc

SECTION = "aws_batch_executor"
REQUIRED = ("job_queue", "job_definition", "job_name", "region_name")


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
    check_health_on_startup: bool = field(default=True, metadata=doc("Call DescribeJobs once at start-up."))
    poll_interval_min: float = field(default=2.0, metadata=doc("Seconds between DescribeJobs polls while busy."))
    poll_interval_max: float = field(default=30.0, metadata=doc("Poll interval reached while nothing changes."))

    @property
    def extra_submit_kwargs(self) -> dict[str, Any]:
        try:
            value = json.loads(self.submit_job_kwargs or "{}")
        except json.JSONDecodeError as exc:
            raise BatchConfigError(
                f"[aws_batch_executor] submit_job_kwargs is not valid JSON ({exc}); set "
                "AIRFLOW__AWS_BATCH_EXECUTOR__SUBMIT_JOB_KWARGS to a JSON object"
            ) from None
        if not isinstance(value, dict):
            raise BatchConfigError("[aws_batch_executor] submit_job_kwargs must be a JSON object")
        return value

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
        settings.extra_submit_kwargs  # noqa: B018 - validate the JSON at start-up, not at the first task
        return settings
