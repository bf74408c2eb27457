"""DAGs the fault-injection suite runs: N mapped sleeps on one queue, and a task too big for any agent."""

from __future__ import annotations

import time
from datetime import timedelta

from airflow.sdk import dag, get_current_context, task

QUEUES = ("faults", "netcut", "gwb")


def _sleeps(queue: str) -> None:
    @dag(dag_id=f"faults_{queue}", schedule=None, catchup=False, max_active_tasks=256,
         params={"n": 10, "seconds": 1.0}, default_args={"retries": 3, "retry_delay": timedelta(seconds=1)})
    def sleeps() -> None:
        @task(queue=queue)
        def items() -> list[int]:
            return list(range(int(get_current_context()["params"]["n"])))

        @task(queue=queue)
        def work(i: int) -> int:
            time.sleep(float(get_current_context()["params"]["seconds"]))
            return i

        work.expand(i=items())

    sleeps()


for _q in QUEUES:
    _sleeps(_q)


@dag(dag_id="faults_too_big", schedule=None, catchup=False)
def too_big() -> None:
    @task(queue="faults", pool_slots=64)
    def needs_64_slots() -> None:
        pass

    needs_64_slots()


too_big()


@dag(dag_id="faults_cancel", schedule=None, catchup=False)
def cancel() -> None:
    @task(queue="gwb", retries=0)
    def sleeps_long() -> None:
        time.sleep(300)

    sleeps_long()


cancel()
