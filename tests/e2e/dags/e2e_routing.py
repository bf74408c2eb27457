"""Routing by queue, retries of a failing task, pool_slots against agent concurrency, a long task."""

from __future__ import annotations

import datetime
import os
import time
from pathlib import Path

from airflow.sdk import DAG, task

START = datetime.datetime(2026, 1, 1)

with DAG("e2e_other_queue", schedule=None, start_date=START, catchup=False):

    @task(queue="other")
    def on_other_agent() -> str:
        return "ran on the agent serving 'other'"

    on_other_agent()


with DAG("e2e_via_api_server", schedule=None, start_date=START, catchup=False):

    @task(queue="viaapi")
    def through_the_api_server() -> str:
        return "dispatched by the gateway mounted in Airflow's API server"

    through_the_api_server()


with DAG("e2e_retry", schedule=None, start_date=START, catchup=False):

    @task(retries=1, retry_delay=datetime.timedelta(seconds=1))
    def always_fails() -> None:
        raise RuntimeError("this task fails on purpose")

    always_fails()


with DAG("e2e_pool_slots", schedule=None, start_date=START, catchup=False):

    @task(queue="slots", pool_slots=2)
    def wide(i: int) -> int:
        time.sleep(2)
        return i

    for i in range(4):
        wide.override(task_id=f"wide_{i}")(i)


with DAG("e2e_long", schedule=None, start_date=START, catchup=False, params={"marker": ""}):

    @task(queue="victim", retries=1, retry_delay=datetime.timedelta(seconds=1))
    def long_running(**context: object) -> str:
        ti = context["ti"]
        marker = Path(str(context["params"]["marker"]))  # type: ignore[index]
        if ti.try_number == 1:  # type: ignore[attr-defined]
            marker.write_text(str(os.getpid()))
            time.sleep(300)
        return "second try finished"

    long_running()


with DAG("e2e_live_log", schedule=None, start_date=START, catchup=False, params={"marker": "", "sleep": 10}):

    @task
    def chatty(**context: object) -> None:
        params = context["params"]
        print(f"live log marker {params['marker']}", flush=True)  # type: ignore[index]
        time.sleep(float(params["sleep"]))  # type: ignore[index]

    chatty()


with DAG("e2e_drain", schedule=None, start_date=START, catchup=False, params={"marker": "", "sleep": 5}):

    @task(queue="drain")
    def sleepy(**context: object) -> None:
        params = context["params"]
        Path(str(params["marker"])).write_text(str(os.getpid()))  # type: ignore[index]
        time.sleep(float(params["sleep"]))  # type: ignore[index]

    sleepy()

with DAG("e2e_print_env", schedule=None, start_date=START, catchup=False):

    @task
    def print_env() -> None:
        for name, value in sorted(os.environ.items()):
            print(f"{name}={value}", flush=True)

    print_env()
