"""The dispatch interface every backend implements (edge agents over Redis, AWS Batch).

``DispatchExecutor`` (edgeexec/executor.py) turns Airflow workloads into ``JobSpec``s and
``JobEvent``s back into Airflow states; a ``Dispatcher`` only moves jobs. One contract test
suite runs against every dispatcher.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Protocol

from edgeexec.jobs import JobEvent, JobSpec, Orphan


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
