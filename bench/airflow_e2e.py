"""The same DAGs on the same Airflow under three executors, one after the other, on this machine.

    .venv-bench/bin/python -m bench.airflow_e2e [--runs 10] [--executors edgeexec,edge3,celery]

Each executor gets a fresh stack: a private PostgreSQL and Redis, Airflow's api-server, scheduler
and dag-processor, and one worker with concurrency 8 at default settings:
* edgeexec: ``edgeexec.EdgeExecutor``, a gateway and ``agent start -c 8``;
* edge3: the Edge provider's ``EdgeExecutor`` (``[edge] api_enabled``) and ``airflow edge worker -c 8``;
* celery: ``CeleryExecutor`` with the Redis broker and ``airflow celery worker -c 8``.
After one warm-up run, ``bench_one`` (one trivial task) runs ``--runs`` times in a row, then
``bench_fifty`` (50 trivial tasks in parallel) once. Everything is read from the metadata DB:
queued -> running per task (``queued_dttm`` -> ``start_date``), run duration, makespan, tasks/s.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson
import sqlalchemy as sa

from edgeexec.localstack.processes import BIN, RedisServer, wait_for
from edgeexec.localstack.stack import AgentSpec, LocalStack, StackConfig
from tests.servers import PostgresServer

ROOT = Path(__file__).parent.parent
DAGS = Path(__file__).parent / "dags"
CONCURRENCY = 8


def _env(executor: str, stack: LocalStack, pg: PostgresServer, redis_url: str) -> dict[str, str]:
    if executor == "edgeexec":
        return {}
    if executor == "edge3":
        return {"AIRFLOW__CORE__EXECUTOR": "airflow.providers.edge3.executors.EdgeExecutor",
                "AIRFLOW__EDGE__API_ENABLED": "True",
                "AIRFLOW__EDGE__API_URL": f"{stack.api_url}/edge_worker/v1/rpcapi"}
    return {"AIRFLOW__CORE__EXECUTOR": "CeleryExecutor", "AIRFLOW__CELERY__BROKER_URL": redis_url,
            "AIRFLOW__CELERY__RESULT_BACKEND": f"db+postgresql+psycopg2://postgres@127.0.0.1:{pg.port}/airflow",
            "AIRFLOW__CELERY__WORKER_CONCURRENCY": str(CONCURRENCY)}


def _start_worker(executor: str, stack: LocalStack) -> None:
    if executor == "edgeexec":
        stack.start_gateway()
        stack.start_agent(AgentSpec("bench-agent", ("default",), CONCURRENCY))
    elif executor == "edge3":
        stack._spawn("edge-worker", [str(BIN / "airflow"), "edge", "worker", "-c", str(CONCURRENCY)])
    else:
        stack._spawn("celery-worker", [str(BIN / "airflow"), "celery", "worker", "-c", str(CONCURRENCY),
                                       "--skip-serve-logs"])


def _start(executor: str, home: Path) -> tuple[LocalStack, PostgresServer, RedisServer]:
    pg = PostgresServer().start()
    rs = RedisServer(home / "redis").start()
    cfg = StackConfig(home=home, dags_folder=DAGS, sql_alchemy_conn=pg.url, redis_url=rs.url, agents=())
    stack = LocalStack(cfg)
    cfg.extra_env = {"AIRFLOW__CORE__PARALLELISM": "64", **_env(executor, stack, pg, rs.url)}
    stack._airflow("db", "migrate")
    for component in ("api-server", "scheduler", "dag-processor"):
        stack.start_airflow(component)
    _start_worker(executor, stack)
    from edgeexec.localstack.processes import http_ok

    wait_for(lambda: http_ok(f"{stack.api_url}/api/v2/monitor/health"), 180, "the api-server", 0.5)
    stack.wait_for_dags(["bench_one", "bench_fifty"])
    return stack, pg, rs


def _tis(db: sa.Engine, dag_id: str, run_id: str) -> list[Any]:
    with db.connect() as c:
        return list(c.execute(sa.text(
            "select id, try_number, state, queued_dttm, start_date, end_date from task_instance "
            "where dag_id = :d and run_id = :r"),
            {"d": dag_id, "r": run_id}))


def _edgeexec_split(stack: LocalStack, ti: Any) -> dict[str, float]:
    """Where a lone task's queued -> running goes: scheduler -> Redis, Redis -> agent started the
    process (accepted), process -> Airflow's start_date (supervisor + task start-up)."""
    import uuid

    import redis

    from edgeexec.dispatch import task_ref
    from edgeexec.store.keys import Keys

    keys = Keys()
    client = redis.Redis.from_url(stack.redis_url, decode_responses=True)
    job = client.get(keys.ref(task_ref(uuid.UUID(str(ti.id)), ti.try_number)))
    enq, started = (int(x) for x in client.hmget(keys.job(str(job)), "enq", "started"))
    client.close()
    queued_ms, start_ms = ti.queued_dttm.timestamp() * 1000, ti.start_date.timestamp() * 1000
    return {"queued_to_redis": enq - queued_ms, "redis_to_agent_started": started - enq,
            "agent_started_to_airflow_running": start_ms - started}


def _run(db: sa.Engine, dag_id: str, run_id: str) -> Any:
    with db.connect() as c:
        return c.execute(sa.text("select state, start_date, end_date from dag_run where dag_id = :d and run_id = :r"),
                         {"d": dag_id, "r": run_id}).one()


def measure(executor: str, runs: int) -> dict[str, Any]:
    home = Path(tempfile.mkdtemp(prefix=f"edgeexec-bench-{executor}-"))
    stack, pg, rs = _start(executor, home)
    db = sa.create_engine(pg.url)
    try:
        warm = stack.trigger("bench_one")
        stack.wait_for_run("bench_one", warm, 300)
        lone: list[float] = []
        durations: list[float] = []
        split: list[dict[str, float]] = []
        for _ in range(runs):
            run_id = stack.trigger("bench_one")
            assert stack.wait_for_run("bench_one", run_id, 300) == "success", f"{executor}: bench_one failed"
            (ti,) = _tis(db, "bench_one", run_id)
            lone.append((ti.start_date - ti.queued_dttm).total_seconds())
            if executor == "edgeexec":
                split.append(_edgeexec_split(stack, ti))
            run = _run(db, "bench_one", run_id)
            durations.append((run.end_date - run.start_date).total_seconds())
        run_id = stack.trigger("bench_fifty")
        state = stack.wait_for_run("bench_fifty", run_id, 900)
        tis = _tis(db, "bench_fifty", run_id)
        lat = sorted((t.start_date - t.queued_dttm).total_seconds() for t in tis if t.start_date and t.queued_dttm)
        first_queued = min(t.queued_dttm for t in tis)
        last_end = max(t.end_date for t in tis if t.end_date)
        makespan = (last_end - first_queued).total_seconds()
        return {
            "executor": executor, "runs": runs,
            "lone_queued_to_running_s_median": round(statistics.median(lone), 3),
            "lone_queued_to_running_s_all": [round(x, 3) for x in lone],
            "one_task_run_s_median": round(statistics.median(durations), 3),
            "fifty_state": state, "fifty_succeeded": sum(1 for t in tis if t.state == "success"),
            "fifty_queued_to_running_s_median": round(statistics.median(lat), 3),
            "fifty_queued_to_running_s_p90": round(lat[int(0.9 * (len(lat) - 1))], 3),
            "fifty_makespan_s": round(makespan, 2), "fifty_tasks_per_s": round(len(tis) / makespan, 2),
            "fifty_queued_to_running_s_all": [round(x, 3) for x in lat],
            "fifty_task_run_s_median": round(statistics.median(
                (t.end_date - t.start_date).total_seconds() for t in tis if t.end_date and t.start_date), 3),
            **({"lone_split_ms_median": {k: round(statistics.median(d[k] for d in split), 1) for k in split[0]}}
               if split else {}),
        }
    finally:
        stack.stop()
        rs.stop()
        pg.stop()


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--executors", default="edgeexec,edge3,celery")
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "airflow_e2e.json"))
    ap.add_argument("--keep", action="store_true", help="keep results of executors not measured this time")
    args = ap.parse_args()
    by: dict[str, dict[str, Any]] = {}
    out = Path(args.out)
    if args.keep and out.exists():  # re-measure some executors, keep the others' last figures
        by = {r["executor"]: r for r in orjson.loads(out.read_bytes())["rows"]}
    for executor in args.executors.split(","):
        row = measure(executor, args.runs)
        print(orjson.dumps({k: v for k, v in row.items() if not k.endswith("_all")}).decode(), flush=True)
        by[executor] = row
    rows = [by[e] for e in ("edgeexec", "edge3", "celery") if e in by]
    ratios: dict[str, float] = {}
    if "edgeexec" in by:
        ours = by["edgeexec"]
        for peer in ("edge3", "celery"):
            if peer in by:
                for key in ("lone_queued_to_running_s_median", "fifty_queued_to_running_s_median", "fifty_makespan_s",
                            "one_task_run_s_median"):
                    ratios[f"{peer}/{key}"] = round(by[peer][key] / ours[key], 2) if ours[key] else float("inf")
    for k, v in ratios.items():
        print(f"{k}: peer / edgeexec = {v}")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_bytes(orjson.dumps({"at": time.time(), "concurrency": CONCURRENCY, "rows": rows,
                                             "ratios_peer_over_edgeexec": ratios}, option=orjson.OPT_INDENT_2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
