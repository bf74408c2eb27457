"""A deadline missed while the task runs: Airflow sends the SyncCallback to the executor (an agent)."""

from __future__ import annotations

import datetime
import time
from pathlib import Path

from airflow.sdk import DAG, task
from airflow.sdk.definitions.callback import SyncCallback
from airflow.sdk.definitions.deadline import DeadlineAlert, DeadlineReference

MARKER_DIR = Path("/tmp/edgeexec-e2e-callbacks")


def record_miss(**kwargs: object) -> None:
    MARKER_DIR.mkdir(exist_ok=True)
    (MARKER_DIR / str(kwargs.get("tag", "missed"))).write_text("deadline missed")


with DAG(
    "e2e_deadline_callback",
    schedule=None,
    start_date=datetime.datetime(2026, 1, 1),
    catchup=False,
    deadline=DeadlineAlert(
        reference=DeadlineReference.DAGRUN_QUEUED_AT,
        interval=datetime.timedelta(seconds=1),
        callback=SyncCallback(record_miss, kwargs={"tag": "e2e"}),
    ),
):

    @task
    def slow() -> None:
        time.sleep(8)

    slow()
