"""The dispatch interface every backend implements (edge agents over Redis, AWS Batch), and the
backend-neutral records it moves: job specs, events and orphans (pure).

``DispatchExecutor`` (edgeexec/airflow/executor.py) turns Airflow workloads into ``JobSpec``s and
``JobEvent``s back into Airflow states; a ``Dispatcher`` only moves jobs. One contract test
suite runs against every dispatcher.

A *ref* names one Airflow workload attempt (``ti:<ti id>:<try>``, ``cb:<callback id>`` or
``ct:<connection test id>``); a *job
id* names one submission of it. The same ref may be submitted twice (a rescheduled task is
queued again with the same try number), so events carry both and the executor keeps only the
newest job id per ref.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

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
    label: str = ""
    """What operators read for the job on the fleet pages (DAG, task, run, try); never parsed."""


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


def connection_test_ref(connection_test_id: object) -> str:
    return f"ct:{connection_test_id}"


def ti_id_of(ref: str) -> str | None:
    """The task-instance id inside a task ref, or None for other kinds."""
    kind, _, rest = ref.partition(":")
    return rest.rpartition(":")[0] if kind == "ti" else None


def _job_id(pre_assigned: object) -> str:
    """The id Airflow assigned in the same commit that set the task QUEUED, where it did
    (``pre_assigns_external_executor_id``): the job is then known by that id before it exists, so
    a scheduler that crashed before submitting left nothing under it, and one that crashed after
    left exactly that job; otherwise a fresh one."""
    if pre_assigned:
        try:
            return uuid.UUID(str(pre_assigned)).hex
        except ValueError:
            pass  # not a UUID (another executor's id): a fresh one
    return uuid.uuid4().hex


def task_label(ti: Any) -> str:
    """``dag.task[map] run try N``: which task a job is, for people."""
    index = getattr(ti, "map_index", -1)
    mapped = f"[{index}]" if isinstance(index, int) and index >= 0 else ""
    return f"{ti.dag_id}.{ti.task_id}{mapped} {ti.run_id} try {ti.try_number}"


def spec_for(workload: Any, default_queue: str) -> JobSpec:
    """Map an Airflow ExecuteTask/ExecuteCallback/TestConnection workload to a JobSpec (duck-typed:
    no Airflow import)."""
    payload = workload.model_dump_json()
    ti = getattr(workload, "ti", None)
    job_id = _job_id(getattr(ti, "external_executor_id", None))
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
            label=task_label(ti),
        )
    if hasattr(workload, "connection_test_id"):
        # "Test connection" in Airflow: runs where the connection is used (its queue), reports its
        # result to the Execution API itself; the job only carries it there
        return JobSpec(job_id=job_id, ref=connection_test_ref(workload.connection_test_id), kind="connection_test",
                       queue=workload.queue or default_queue, slots=1, priority=CALLBACK_PRIORITY,
                       workload_json=payload, label=f"test of connection {getattr(workload, 'connection_id', '')}".strip())
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

class Dispatcher(Protocol):
    def start(self, owner: str) -> None:
        """Connect and remember which scheduler (owner) this dispatcher reports to."""

    def submit(self, jobs: Sequence[JobSpec]) -> None:
        """Hand jobs to the backend; never blocks on a remote worker."""

    def events(self) -> Iterable[JobEvent]:
        """State changes since the last call, oldest first."""

    def cancel(self, ref: str, reason: str) -> None:
        """Stop the newest job of a workload ref, wherever it is."""

    def adopt(self, refs: Mapping[str, str | None]) -> Mapping[str, str]:
        """Take over jobs a previous scheduler queued (ref -> its external id, if Airflow has one).

        Returns ref -> job id for the jobs adopted; their current state follows as events.
        """

    def sweep(self) -> Sequence[Orphan]:
        """Liveness housekeeping; returns running jobs whose worker went silent."""

    def fail(self, job_id: str, reason: str) -> None:
        """Force a job to failed (its worker is gone); emits the event like any other."""

    def stop(self, *, terminate: bool) -> None:
        """Release resources; with terminate, cancel this owner's unfinished jobs first."""
