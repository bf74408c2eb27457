"""Tasks sent to AWS Batch (the stand-in runs their container command locally)."""

from __future__ import annotations

import datetime
import os

from airflow.sdk import DAG, task

BATCH = "batchexec.BatchExecutor"

with DAG("e2e_batch", schedule=None, start_date=datetime.datetime(2026, 1, 1), catchup=False):

    @task(executor=BATCH)
    def batch_ok() -> str:
        return "ran in a Batch job"

    @task(executor=BATCH)
    def batch_fails() -> None:
        raise RuntimeError("this task fails on purpose")

    @task(executor=BATCH)
    def batch_crash() -> None:
        os._exit(7)  # a crash, not a handled failure: the Batch job must end FAILED, not SUCCEEDED

    @task(executor=BATCH, executor_config={
        "containerOverrides": {"environment": [{"name": "E2E_OVERRIDE", "value": "from-executor-config"}]},
        "tags": {"e2e_tag": "yes"},
    })
    def batch_overrides() -> None:
        assert os.environ["E2E_OVERRIDE"] == "from-executor-config", os.environ.get("E2E_OVERRIDE")

    @task(executor=BATCH, queue="gpu")  # [aws_batch_executor] queue_map sends it to the gpu job queue
    def batch_mapped_queue() -> str:
        return "ran on the gpu job queue"

    @task(executor=BATCH, retries=0, executor_config={
        "containerOverrides": {"environment": [{"name": "STANDIN_OOM", "value": "1"}]}})
    def batch_oom() -> None:
        import time

        time.sleep(60)  # the stand-in kills the container as the OOM killer would

    batch_ok()
    batch_mapped_queue()
    batch_oom()
    batch_fails()
    batch_crash()
    batch_overrides()
