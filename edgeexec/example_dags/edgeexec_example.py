"""Example DAGs run by `make demo`: the everyday operators, XCom, mapping and branching on an edge agent."""

from __future__ import annotations

import datetime

from airflow.providers.standard.operators.bash import BashOperator
from airflow.sdk import DAG, task

with DAG("edgeexec_example_etl", schedule=None, start_date=datetime.datetime(2026, 1, 1), catchup=False,
         tags=["edgeexec", "example"]) as etl:

    @task
    def extract() -> list[int]:
        return [3, 1, 4, 1, 5, 9, 2, 6]

    @task
    def square(x: int) -> int:
        return x * x

    @task
    def load(values: list[int]) -> int:
        total = sum(values)
        print(f"sum of squares: {total}")
        return total

    hello = BashOperator(task_id="hello_from_the_edge", bash_command="echo running on $(hostname)")
    hello >> load(square.expand(x=extract()))


with DAG("edgeexec_example_branch", schedule=None, start_date=datetime.datetime(2026, 1, 1), catchup=False,
         tags=["edgeexec", "example"]) as branch:

    @task.branch
    def choose() -> str:
        return "fast_path"

    @task
    def fast_path() -> str:
        return "fast"

    @task
    def slow_path() -> str:
        return "slow"

    @task(trigger_rule="none_failed_min_one_success")
    def join() -> None:
        print("joined")

    choice = choose()
    choice >> [fast_path(), slow_path()] >> join()
