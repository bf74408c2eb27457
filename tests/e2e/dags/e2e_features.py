"""Everything the Edge provider documents as working, in one DAG run by an edge agent."""

from __future__ import annotations

import datetime

from airflow.providers.standard.operators.bash import BashOperator
from airflow.providers.standard.operators.python import PythonOperator
from airflow.sdk import DAG, Connection, Variable, setup, task, teardown

START = datetime.datetime(2026, 1, 1)


def _classic(**context: object) -> str:
    return "from-python-operator"


with DAG("e2e_features", schedule=None, start_date=START, catchup=False) as features:

    @setup
    @task
    def create_resource() -> str:
        return "resource-ready"

    @teardown
    @task
    def delete_resource(state: str) -> None:
        assert state == "resource-ready", state

    bash = BashOperator(task_id="bash", bash_command="echo bash-ok && test -n \"$AIRFLOW_CTX_DAG_ID\"")
    python_op = PythonOperator(task_id="python_operator", python_callable=_classic)

    @task.bash
    def task_bash() -> str:
        return "echo task-bash-ok"

    @task
    def produce() -> dict[str, int]:
        return {"a": 1, "b": 2}

    @task
    def consume(data: dict[str, int], classic: str) -> int:
        assert classic == "from-python-operator", classic
        return data["a"] + data["b"]

    @task
    def numbers() -> list[int]:
        return [1, 2, 3]

    @task
    def double(n: int) -> int:
        return 2 * n

    @task
    def total(values: list[int]) -> None:
        assert sorted(values) == [2, 4, 6], values

    @task.branch
    def pick() -> str:
        return "chosen"

    @task
    def chosen() -> str:
        return "chosen"

    @task
    def not_chosen() -> str:
        raise RuntimeError("the branch should have skipped this task")

    @task.virtualenv(system_site_packages=False)
    def in_virtualenv() -> str:
        import sys

        return sys.prefix

    @task
    def variable_and_connection() -> None:
        assert Variable.get("e2e_variable") == "variable-value"
        conn = Connection.get("e2e_connection")
        assert conn.host == "example.internal" and conn.port == 5432, conn

    resource = create_resource()
    work = [bash, python_op, task_bash(), consume(produce(), python_op.output), total(double.expand(n=numbers())),
            in_virtualenv(), variable_and_connection()]
    branch = pick()
    branch >> [chosen(), not_chosen()]
    resource >> work >> delete_resource(resource)
