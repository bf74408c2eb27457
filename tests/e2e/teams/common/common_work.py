"""A DAG of the common bundle: three tasks on queue 'default', a name every team uses."""

from __future__ import annotations

import os
from datetime import datetime

from airflow.sdk import DAG, task

with DAG("common_work", schedule=None, start_date=datetime(2026, 1, 1), catchup=False):

    @task(queue="default")
    def where(i: int) -> str:
        return f"{i} ran for common on {os.environ.get('AIRFLOW__EDGEEXEC__TEAM', '')!r}"

    where.expand(i=[1, 2, 3])
