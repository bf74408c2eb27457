"""The benchmark's DAGs, identical for every executor: one trivial task, and 50 in parallel."""

from __future__ import annotations

from airflow.sdk import dag, task


@dag(dag_id="bench_one", schedule=None, catchup=False)
def one() -> None:
    @task
    def noop() -> None:
        return None

    noop()


@dag(dag_id="bench_fifty", schedule=None, catchup=False, max_active_tasks=64)
def fifty() -> None:
    @task
    def noop(i: int) -> int:
        return i

    noop.expand(i=list(range(50)))


one()
fifty()
