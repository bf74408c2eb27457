"""AWS Batch API calls per task: edgeexec's BatchExecutor vs the Amazon provider's AwsBatchExecutor.

    .venv-bench/bin/python -m bench.batch [--tasks 200] [--job-seconds 60]

Both executors run in this process against the same moto server (tests/batch_standin.py: moto's
real Batch API, with jobs run as local processes), configured by the same ``[aws_batch_executor]``
variables, with the same job definition (every job sleeps ``--job-seconds``). Each gets all tasks
queued at once and a heartbeat every second, as a scheduler loop gives it, until every task has
finished; SubmitJob and DescribeJobs calls are counted at the endpoint.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import orjson

from edgeexec.localstack.processes import BIN, Proc, free_port, port_open, wait_for

ROOT = Path(__file__).parent.parent
REGION = "us-east-1"
PEERS = {
    "edgeexec": "batchexec.BatchExecutor",
    "amazon-provider": "airflow.providers.amazon.aws.executors.batch.AwsBatchExecutor",
}


class Endpoint:
    def __init__(self, tmp: Path) -> None:
        self.port, self.control = free_port(), free_port()
        env = {**os.environ, "PATH": f"{BIN}:{os.environ.get('PATH', '')}", "AWS_DEFAULT_REGION": REGION}
        self.proc = Proc([sys.executable, "-m", "tests.batch_standin", "--port", str(self.port),
                          "--control-port", str(self.control)], env=env, log=tmp / "standin.log", cwd=ROOT)
        wait_for(lambda: port_open(self.port) and port_open(self.control), 60, "the Batch endpoint")
        self.url = f"http://127.0.0.1:{self.port}"

    def setup(self, job_seconds: float) -> tuple[str, str]:
        import boto3

        kw = {"region_name": REGION, "endpoint_url": self.url, "aws_access_key_id": "bench",
              "aws_secret_access_key": "bench"}
        batch, iam = boto3.client("batch", **kw), boto3.client("iam", **kw)
        role = iam.create_role(RoleName="bench", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
        env = batch.create_compute_environment(computeEnvironmentName="bench", type="UNMANAGED", state="ENABLED",
                                               serviceRole=role)
        queue = batch.create_job_queue(jobQueueName="bench", state="ENABLED", priority=1, computeEnvironmentOrder=[
            {"order": 1, "computeEnvironment": env["computeEnvironmentArn"]}])["jobQueueName"]
        batch.register_job_definition(jobDefinitionName="bench", type="container", containerProperties={
            "image": "bench", "vcpus": 1, "memory": 512, "command": ["true"],
            "environment": [{"name": "STANDIN_COMMAND", "value": orjson.dumps(["sleep", str(job_seconds)]).decode()}]})
        return queue, "bench"

    def counts(self) -> dict[str, int]:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.control}/counts", timeout=10) as r:
            return dict(orjson.loads(r.read()))


def _workloads(n: int) -> list[Any]:
    from airflow.executors.workloads import BundleInfo, ExecuteTask, TaskInstanceDTO

    out = []
    for i in range(n):
        ti = TaskInstanceDTO(id=uuid.uuid4(), task_id=f"t{i}", dag_id="bench", run_id="r", try_number=1,
                             dag_version_id=uuid.uuid4(), queue="default", pool_slots=1, priority_weight=1)
        out.append(ExecuteTask(ti=ti, dag_rel_path=Path("bench.py"), token="jwt", log_path=None,
                               bundle_info=BundleInfo(name="dags-folder")))
    return out


def _executor(path: str, tasks: int) -> Any:
    module, _, name = path.rpartition(".")
    cls = getattr(__import__(module, fromlist=[name]), name)
    return cls(parallelism=tasks)


def measure(peer: str, endpoint: Endpoint, tasks: int) -> dict[str, Any]:
    before = endpoint.counts()
    ex = _executor(PEERS[peer], tasks)
    ex.start()
    for w in _workloads(tasks):
        ex.queue_workload(w, session=None)
    finished: dict[Any, Any] = {}
    t0 = time.monotonic()
    while len(finished) < tasks:
        if time.monotonic() - t0 > 900:
            raise TimeoutError(f"{peer}: only {len(finished)} of {tasks} tasks finished")
        ex.heartbeat()
        for key, (state, _) in ex.get_event_buffer().items():
            if str(state) in ("success", "failed"):
                finished[key] = state
        time.sleep(1.0)
    elapsed = time.monotonic() - t0
    ex.end()
    after = endpoint.counts()
    calls = {k: after.get(k, 0) - before.get(k, 0) for k in ("submit_job", "describe_jobs")}
    return {"executor": peer, "tasks": tasks, "seconds": round(elapsed, 1),
            "succeeded": sum(1 for s in finished.values() if str(s) == "success"),
            "submit_job": calls["submit_job"], "describe_jobs": calls["describe_jobs"],
            "calls_per_task": round((calls["submit_job"] + calls["describe_jobs"]) / tasks, 3)}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tasks", type=int, default=200)
    ap.add_argument("--job-seconds", type=float, default=60)
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "batch.json"))
    args = ap.parse_args()
    import tempfile

    tmp = Path(tempfile.mkdtemp(prefix="edgeexec-bench-batch-"))
    endpoint = Endpoint(tmp)
    try:
        queue, definition = endpoint.setup(args.job_seconds)
        os.environ.update({
            "AIRFLOW_CONN_AWS_DEFAULT": orjson.dumps({"conn_type": "aws", "login": "bench", "password": "bench",
                                                      "extra": {"endpoint_url": endpoint.url,
                                                                "region_name": REGION}}).decode(),
            "AIRFLOW__AWS_BATCH_EXECUTOR__JOB_QUEUE": queue, "AIRFLOW__AWS_BATCH_EXECUTOR__JOB_DEFINITION": definition,
            "AIRFLOW__AWS_BATCH_EXECUTOR__JOB_NAME": "bench", "AIRFLOW__AWS_BATCH_EXECUTOR__REGION_NAME": REGION,
            "AIRFLOW__AWS_BATCH_EXECUTOR__CHECK_HEALTH_ON_STARTUP": "False",
        })
        rows = [measure(peer, endpoint, args.tasks) for peer in PEERS]
    finally:
        endpoint.proc.stop()
    for r in rows:
        print(orjson.dumps(r).decode())
    ours, theirs = rows
    ratio = theirs["calls_per_task"] / ours["calls_per_task"] if ours["calls_per_task"] else float("inf")
    print(f"API calls per task: edgeexec {ours['calls_per_task']} vs Amazon provider {theirs['calls_per_task']} "
          f"({ratio:.1f}x fewer)")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_bytes(orjson.dumps({"at": time.time(), "job_seconds": args.job_seconds, "rows": rows,
                                             "ratio_calls_per_task": round(ratio, 2)}, option=orjson.OPT_INDENT_2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
