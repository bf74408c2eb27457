"""One real Airflow stack per database backend (SQLite, then a private PostgreSQL) for the session."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
import redis
import sqlalchemy as sa

from edgeexec.localstack.stack import AgentSpec, LocalStack, StackConfig, StackUser
from edgeexec.store.keys import Keys
from tests.conftest import REGION, BatchEndpoint
from tests.servers import PostgresServer

DAGS = Path(__file__).parent / "dags"
HEARTBEAT = 3.0
USERS = (StackUser("admin", "admin"), StackUser("ops", "op"), StackUser("watcher", "viewer"))
"""Airflow users who sign in (SimpleAuthManager): an admin, one who may edit pools, one who may read."""
AGENTS = (
    AgentSpec("agent-main", ("default",), 6),
    AgentSpec("agent-other", ("other",), 2),
    AgentSpec("agent-slots", ("slots",), 3),
    AgentSpec("agent-victim", ("victim",), 1),
)


class E2E:
    """The running stack plus direct access to its metadata DB and its Redis."""

    def __init__(self, stack: LocalStack, backend: str, batch: BatchEndpoint) -> None:
        self.stack, self.backend, self.batch = stack, backend, batch
        self.db = sa.create_engine(stack.sql_alchemy_conn.replace("+psycopg2", "+psycopg2"))
        self.redis = redis.Redis.from_url(stack.redis_url, decode_responses=True)
        self.keys = Keys()

    def task_instances(self, dag_id: str, run_id: str) -> list[Any]:
        with self.db.connect() as c:
            return list(c.execute(sa.text(
                "select id, task_id, map_index, state, try_number, start_date, end_date, external_executor_id "
                "from task_instance "
                "where dag_id = :d and run_id = :r order by task_id, map_index"), {"d": dag_id, "r": run_id}))

    def ti_ids(self, dag_id: str, run_id: str, task_id: str) -> dict[int, str]:
        """try number -> task instance id; Airflow 3 gives every try a new id (old ones in history)."""
        out = {}
        with self.db.connect() as c:
            for table in ("task_instance_history", "task_instance"):
                rows = c.execute(sa.text(f"select try_number, {'task_instance_id' if 'history' in table else 'id'} "
                                         f"from {table} where dag_id = :d and run_id = :r and task_id = :t"),
                                 {"d": dag_id, "r": run_id, "t": task_id})
                out.update({int(r[0]): str(r[1]) for r in rows})
        return out

    def run(self, dag_id: str, conf: dict[str, Any] | None = None, timeout: float = 300) -> tuple[str, str]:
        run_id = self.stack.trigger(dag_id, conf)
        return run_id, self.stack.wait_for_run(dag_id, run_id, timeout)

    def job_of(self, ti_id: Any, try_number: int) -> dict[str, str]:
        ti_uuid = ti_id if isinstance(ti_id, uuid.UUID) else uuid.UUID(str(ti_id))  # SQLite stores hex
        job_id = self.redis.get(self.keys.ref(f"ti:{ti_uuid}:{try_number}"))
        assert job_id, f"no job recorded for ti {ti_id} try {try_number}"
        return self.redis.hgetall(self.keys.job(job_id))


def _gpu_queue(batch_endpoint: BatchEndpoint, name: str = "e2e-gpu") -> str:
    known = batch_endpoint.client.describe_job_queues(jobQueues=[name])["jobQueues"]
    return name if known else batch_endpoint.job_queue(name)


@pytest.fixture(scope="session", params=["sqlite", "postgres"])
def e2e(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory,
        batch_endpoint: BatchEndpoint) -> Iterator[E2E]:
    home = Path(tmp_path_factory.mktemp(f"stack-{request.param}"))
    pg = PostgresServer().start() if request.param == "postgres" else None
    extra = {
        "AIRFLOW__CORE__EXECUTOR": "edgeexec.EdgeExecutor,batchexec.BatchExecutor",
        "AIRFLOW__EDGEEXEC__TASK_STALE_AFTER": "4",
        "AIRFLOW__WORKERS__MIN_HEARTBEAT_INTERVAL": "1",
        "AIRFLOW__CORE__PARALLELISM": "32",
        "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
        "AIRFLOW__EDGEEXEC__MOUNT_GATEWAY": "true",  # the API server also serves a gateway at /edgeexec
        "AIRFLOW__CORE__TEST_CONNECTION": "Enabled",  # "Test connection" runs on agents
        "AIRFLOW__LOGGING__LOGGING_CONFIG_CLASS": "edgeexec.logging_config.LOGGING_CONFIG",
        "AIRFLOW_CONN_AWS_DEFAULT": batch_endpoint.connection_json(),
        "AIRFLOW__AWS_BATCH_EXECUTOR__JOB_QUEUE": batch_endpoint.queue,
        "AIRFLOW__AWS_BATCH_EXECUTOR__JOB_NAME": "airflow-task",
        "AIRFLOW__AWS_BATCH_EXECUTOR__REGION_NAME": REGION,
        "AIRFLOW__AWS_BATCH_EXECUTOR__SUBMIT_JOB_KWARGS": '{"tags": {"deployment": "e2e"}}',
        "AIRFLOW__AWS_BATCH_EXECUTOR__QUEUE_MAP": orjson.dumps({"gpu": _gpu_queue(batch_endpoint)}).decode(),
    }
    stack = LocalStack(StackConfig(home=home, dags_folder=DAGS, sql_alchemy_conn=pg.url if pg else "",
                                   agents=AGENTS, heartbeat_interval=HEARTBEAT, extra_env=extra,
                                   users=USERS))
    # the job definition's environment is what a real job image would be configured with
    extra["AIRFLOW__AWS_BATCH_EXECUTOR__JOB_DEFINITION"] = batch_endpoint.job_definition(
        f"airflow-{request.param}", {
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{stack.api_url}/execution/",
            "AIRFLOW__CORE__EXECUTOR": extra["AIRFLOW__CORE__EXECUTOR"],  # DAGs name it in executor=
            "AIRFLOW__CORE__DAGS_FOLDER": str(DAGS),
            "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(home / "logs"),
            "AIRFLOW_HOME": str(home / "airflow"),
        })
    try:
        stack.start()
        stack.wait_for_dags(["e2e_features", "e2e_other_queue", "e2e_retry", "e2e_pool_slots", "e2e_long", "e2e_drain",
                               "e2e_deadline_callback", "e2e_batch", "e2e_live_log", "e2e_via_api_server"])
        stack.api("POST", "/variables", {"key": "e2e_variable", "value": "variable-value"})
        stack.api("POST", "/connections", {"connection_id": "e2e_connection", "conn_type": "postgres",
                                           "host": "example.internal", "port": 5432})
        yield E2E(stack, request.param, batch_endpoint)
        _no_jwt_in_edgeexec_logs(home)  # after every test on this stack, in whatever order they ran
    except Exception:
        stack.print_tails()
        raise
    finally:
        stack.stop()
        if pg:
            pg.stop()


def _no_jwt_in_edgeexec_logs(home: Path) -> None:
    """No Execution-API JWT (they start with 'eyJ') is in a gateway's or an agent's log."""
    logs = [p for p in home.glob("*.log") if p.name.startswith(("gateway", "agent-"))]
    assert logs
    for path in logs:
        assert "eyJ" not in path.read_text(errors="replace"), f"a JWT in {path.name}"
