"""``batchexec.BatchExecutor``: the generic dispatch executor with the AWS Batch dispatcher.

The task's Airflow ``queue`` picks its job queue through ``[aws_batch_executor] queue_map``
(``job_queue`` otherwise); its ``executor_config`` is merged into SubmitJob (batchexec/kwargs.py).
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any

from batchexec.client import make_client
from batchexec.dispatcher import BatchDispatcher
from batchexec.errors import BatchConfigError
from batchexec.settings import SECTION, BatchSettings
from edgeexec.airflow.executor import DispatchExecutor
from edgeexec.config.lookup import airflow_lookup
from edgeexec.dispatch import Dispatcher, JobEvent

if TYPE_CHECKING:
    from airflow.models.taskinstance import TaskInstance


class BatchExecutor(DispatchExecutor):
    """Every task in its own AWS Batch job; configured in ``[aws_batch_executor]``."""

    supports_multi_team = True
    """One executor per team; each reads its team's overrides (job queue, role, region...),
    e.g. ``AIRFLOW__TEAM_A___AWS_BATCH_EXECUTOR__JOB_QUEUE``."""

    def make_dispatcher(self) -> Dispatcher:
        settings = BatchSettings.load(airflow_lookup(SECTION, self.team_name))
        return BatchDispatcher(settings, lambda: make_client(settings.aws_conn_id, settings.region_name))

    def report_failure(self, key: Any, event: JobEvent) -> None:
        """Into the try's own log: a killed container cannot say why it died (batchexec/tasklog.py)."""
        from batchexec.tasklog import append

        if not hasattr(key, "task_id"):  # a callback's or a connection test's key: it has no task log
            return
        try:
            append(key, [f"AWS Batch job {event.where or event.job_id} failed: {event.reason}"])
        except Exception:  # the scheduler loop goes on; the reason is in its log already
            self.log.exception("could not add the failure of job %s to the task log of %s", event.job_id, key)

    def get_task_log(self, ti: TaskInstance, try_number: int) -> tuple[list[str], list[str]]:
        """A running task's live log from its job's CloudWatch Logs stream (Airflow asks only while
        the task runs; the API server builds this executor without start(), so clients are made here)."""
        from batchexec.logs import read_live

        job_id = getattr(ti, "external_executor_id", None)
        if not job_id or try_number != ti.try_number:
            return [], []
        try:
            batch, logs = self._log_clients
        except BatchConfigError as exc:  # this API server lacks [aws_batch_executor]: say so in the view
            return [f"batchexec: cannot read the live log here: {exc}"], []
        return read_live(batch, logs, str(job_id))

    @functools.cached_property
    def _log_clients(self) -> tuple[Any, Any]:
        """(batch, logs) clients, made once per executor: Airflow's log reader keeps its executors."""
        settings = BatchSettings.load(airflow_lookup(SECTION, self.team_name))
        return (make_client(settings.aws_conn_id, settings.region_name),
                make_client(settings.aws_conn_id, settings.region_name, "logs"))
