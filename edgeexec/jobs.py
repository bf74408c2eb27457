"""Job specs and events: the backend-neutral vocabulary of the dispatch interface (pure).

A *ref* names one Airflow workload attempt (``ti:<ti id>:<try>`` or ``cb:<callback id>``); a *job
id* names one submission of it. The same ref may be submitted twice (a rescheduled task is
queued again with the same try number), so events carry both and the executor keeps only the
newest job id per ref.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

from edgeexec.protocol import JobState

CALLBACK_PRIORITY = 1 << 30
"""Callbacks finish work already started, so they go ahead of any task (as in Airflow's executors)."""


@dataclass(frozen=True, slots=True)
class JobSpec:
    """Everything a dispatcher needs to run one workload."""

    job_id: str
    ref: str
    kind: str
    queue: str
    slots: int
    priority: int
    workload_json: str = field(repr=False)
    executor_config: dict[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class JobEvent:
    """A job changed state on the backend."""

    job_id: str
    ref: str
    state: JobState
    reason: str = ""
    exit_code: int | None = None
    where: str = ""
    """Where the job is (agent name, Batch job id): for operators' logs."""
    external_id: str = ""
    """The backend's id for the job; Airflow stores it as ``external_executor_id`` for adoption."""


@dataclass(frozen=True, slots=True)
class Orphan:
    """A running job whose agent went silent; the executor decides whether the task is dead."""

    agent: str
    job_id: str
    ref: str
    kind: str


def task_ref(ti_id: object, try_number: int) -> str:
    return f"ti:{ti_id}:{try_number}"


def callback_ref(callback_id: object) -> str:
    return f"cb:{callback_id}"


def ti_id_of(ref: str) -> str | None:
    """The task-instance id inside a task ref, or None for other kinds."""
    kind, _, rest = ref.partition(":")
    return rest.rpartition(":")[0] if kind == "ti" else None


def spec_for(workload: Any, default_queue: str) -> JobSpec:
    """Map an Airflow ExecuteTask/ExecuteCallback workload to a JobSpec (duck-typed: no Airflow import)."""
    payload = workload.model_dump_json()
    job_id = uuid.uuid4().hex
    ti = getattr(workload, "ti", None)
    if ti is not None:
        return JobSpec(
            job_id=job_id,
            ref=task_ref(ti.id, ti.try_number),
            kind="task",
            queue=ti.queue or default_queue,
            slots=max(1, int(ti.pool_slots or 1)),
            priority=int(ti.priority_weight or 0),
            workload_json=payload,
            executor_config=getattr(ti, "executor_config", None),
        )
    callback = workload.callback
    queue = callback.data.get("queue") if isinstance(callback.data, dict) else None
    return JobSpec(
        job_id=job_id,
        ref=callback_ref(callback.id),
        kind="callback",
        queue=queue or default_queue,
        slots=1,
        priority=CALLBACK_PRIORITY,
        workload_json=payload,
    )
