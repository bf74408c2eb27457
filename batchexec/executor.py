"""``batchexec.BatchExecutor``: the generic dispatch executor with the AWS Batch dispatcher.

The task's Airflow ``queue`` is not used (every job goes to ``[aws_batch_executor] job_queue``);
its ``executor_config`` is merged into SubmitJob (see batchexec/kwargs.py).
"""

from __future__ import annotations

from batchexec.client import make_client
from batchexec.dispatcher import BatchDispatcher
from batchexec.settings import SECTION, BatchSettings
from edgeexec.airflow.executor import DispatchExecutor
from edgeexec.config.lookup import airflow_lookup
from edgeexec.dispatch import Dispatcher


class BatchExecutor(DispatchExecutor):
    """Every task in its own AWS Batch job; configured in ``[aws_batch_executor]``."""

    supports_multi_team = True
    """One executor per team; each reads its team's overrides (job queue, role, region...),
    e.g. ``AIRFLOW__TEAM_A___AWS_BATCH_EXECUTOR__JOB_QUEUE``."""

    def make_dispatcher(self) -> Dispatcher:
        settings = BatchSettings.load(airflow_lookup(SECTION, self.team_name))
        return BatchDispatcher(settings, lambda: make_client(settings.aws_conn_id, settings.region_name))
