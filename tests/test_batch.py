"""batchexec: SubmitJob arguments (pure), settings, and the dispatcher against a real AWS Batch endpoint."""

from __future__ import annotations

import math
import time
import uuid
from typing import Any

import boto3
import orjson
import pytest
from botocore.exceptions import ClientError

from batchexec.dispatcher import BatchDispatcher, backoff_seconds, classify
from batchexec.errors import BatchConfigError
from batchexec.kwargs import camelize_keys, command_for, submit_kwargs
from batchexec.settings import BatchSettings
from edgeexec.config.lookup import env_lookup
from edgeexec.dispatch import JobSpec
from edgeexec.localstack.processes import wait_for
from edgeexec.protocol import JobState
from tests.conftest import REGION, BatchEndpoint

# ---------------------------------------------------------------------------- pure


def _kwargs(extra: dict[str, Any] | None = None, executor_config: dict[str, Any] | None = None) -> dict[str, Any]:
    return submit_kwargs(job_name="airflow-task", job_queue="q", job_definition="def", extra=extra or {},
                         executor_config=executor_config, command=["run", "me"])


def test_precedence_config_then_submit_kwargs_then_executor_config() -> None:
    """defaults < [aws_batch_executor] < submit_job_kwargs < executor_config; dicts merge, lists replace."""
    out = _kwargs(
        extra={"job_queue": "from-kwargs", "container_overrides": {"memory": 1024, "vcpus": 1},
               "tags": {"team_name": "data"}},
        executor_config={"containerOverrides": {"memory": 4096}, "tags": {"cost": "x"}, "retryStrategy": {"attempts": 1}},
    )
    assert out["jobName"] == "airflow-task" and out["jobDefinition"] == "def"
    assert out["jobQueue"] == "from-kwargs"
    assert out["containerOverrides"]["memory"] == 4096 and out["containerOverrides"]["vcpus"] == 1
    assert out["tags"] == {"team_name": "data", "cost": "x"}, "keys inside tags keep their spelling"
    assert out["retryStrategy"] == {"attempts": 1}


def test_command_and_executor_marker_are_always_set() -> None:
    """The task's command is forced and AIRFLOW_IS_EXECUTOR_CONTAINER=true added exactly once."""
    env = [{"name": "A", "value": "1"}, {"name": "AIRFLOW_IS_EXECUTOR_CONTAINER", "value": "no"}]
    out = _kwargs(executor_config={"containerOverrides": {"environment": env}})
    assert out["containerOverrides"]["command"] == ["run", "me"]
    assert out["containerOverrides"]["environment"] == [
        {"name": "A", "value": "1"}, {"name": "AIRFLOW_IS_EXECUTOR_CONTAINER", "value": "true"}]
    assert command_for('{"x": 1}')[-1] == '{"x": 1}'


@pytest.mark.parametrize("config", [{"command": ["x"]}, {"containerOverrides": {"command": ["x"]}}])
def test_command_in_executor_config_is_an_error(config: dict[str, Any]) -> None:
    """A task may not replace the command: it would not run the task at all."""
    with pytest.raises(BatchConfigError, match="must not set 'command'"):
        _kwargs(executor_config=config)


def test_camelize_keys_leaves_tags_alone() -> None:
    """snake_case config becomes boto3's camelCase, but user tag keys are data."""
    assert camelize_keys({"retry_strategy": {"evaluate_on_exit": []}, "tags": {"my_tag": "v"}}) == {
        "retryStrategy": {"evaluateOnExit": []}, "tags": {"my_tag": "v"}}


def test_missing_required_option_names_it_and_both_ways_to_set_it() -> None:
    """Start-up fails naming the option, airflow.cfg and the environment variable."""
    with pytest.raises(BatchConfigError) as err:
        BatchSettings.load(env_lookup("aws_batch_executor", {"AIRFLOW__AWS_BATCH_EXECUTOR__JOB_QUEUE": "q"}))
    msg = str(err.value)
    assert "[aws_batch_executor] job_definition is required" in msg
    assert "AIRFLOW__AWS_BATCH_EXECUTOR__REGION_NAME" in msg and "job_queue" not in msg.replace("JOB_QUEUE", "")


def test_bad_submit_job_kwargs_json_fails_at_start() -> None:
    """Invalid SUBMIT_JOB_KWARGS is reported at start-up, not at the first task."""
    env = {f"AIRFLOW__AWS_BATCH_EXECUTOR__{k}": "x" for k in ("JOB_QUEUE", "JOB_DEFINITION", "JOB_NAME", "REGION_NAME")}
    env["AIRFLOW__AWS_BATCH_EXECUTOR__SUBMIT_JOB_KWARGS"] = "{not json"
    with pytest.raises(BatchConfigError, match="SUBMIT_JOB_KWARGS"):
        BatchSettings.load(env_lookup("aws_batch_executor", env))


def _client_error(code: str, status: int) -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": "m"}, "ResponseMetadata": {"HTTPStatusCode": status}},
                       "SubmitJob")


def test_error_classification_and_backoff() -> None:
    """Throttling and 5xx retry, credentials reload, client errors are final; backoff grows with jitter."""
    assert classify(_client_error("ThrottlingException", 400)).retryable
    assert classify(_client_error("ServerException", 500)).retryable
    cred = classify(_client_error("ExpiredTokenException", 403))
    assert cred.retryable and cred.reload_credentials
    assert not classify(_client_error("ClientException", 400)).retryable
    assert 1 <= backoff_seconds(1) <= 3 and backoff_seconds(10) <= 121


# ---------------------------------------------------------------------------- real endpoint


def _settings(ep: BatchEndpoint, **over: Any) -> BatchSettings:
    base = dict(job_queue=ep.queue, job_definition=ep.job_definition("plain"), job_name="airflow-task",
                region_name=REGION, max_submit_job_attempts=3, poll_interval_min=0.2, poll_interval_max=1.0)
    base.update(over)
    return BatchSettings(**base)


def _dispatcher(ep: BatchEndpoint, clock: Any = time.monotonic, **over: Any) -> BatchDispatcher:
    d = BatchDispatcher(_settings(ep, **over), lambda: ep.client, clock=clock)
    d.start("sched")
    return d


def standin_spec(command: list[str] | None = None, fail_before_start: bool = False) -> JobSpec:
    env = []
    if command is not None:
        env.append({"name": "STANDIN_COMMAND", "value": orjson.dumps(command).decode()})
    if fail_before_start:
        env.append({"name": "STANDIN_FAIL_BEFORE_START", "value": "1"})
    job = uuid.uuid4().hex
    return JobSpec(job, f"ti:{job}:1", "task", "default", 1, 0, "{}",
                   executor_config={"containerOverrides": {"environment": env}})


def _until_terminal(d: BatchDispatcher, jobs: int = 1, timeout: float = 60) -> list[Any]:
    out: list[Any] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        out += list(d.events())
        if sum(e.state.terminal for e in out) >= jobs:
            return out
        time.sleep(0.1)
    raise AssertionError(f"no terminal event within {timeout} s: {out}")


def test_job_lifecycle_and_exit_code(batch_endpoint: BatchEndpoint) -> None:
    """SUBMITTED..RUNNING..SUCCEEDED/FAILED become pending, running, success/failed with the exit code."""
    d = _dispatcher(batch_endpoint)
    ok, bad = standin_spec(["sh", "-c", "sleep 1"]), standin_spec(["sh", "-c", "exit 3"])
    d.submit([ok, bad])
    events = _until_terminal(d, jobs=2)
    by_job = {e.job_id: [x.state for x in events if x.job_id == e.job_id] for e in events}
    assert by_job[ok.job_id][0] is JobState.PENDING and by_job[ok.job_id][-1] is JobState.SUCCESS
    assert JobState.RUNNING in by_job[ok.job_id]
    failed = next(e for e in events if e.job_id == bad.job_id and e.state is JobState.FAILED)
    assert failed.exit_code == 3 and "exit code 3" in failed.reason
    assert all(e.external_id for e in events), "the Batch job id is reported for adoption"


def test_job_failed_before_start_is_resubmitted_within_the_budget(batch_endpoint: BatchEndpoint) -> None:
    """Batch FAILing a job before it starts costs one attempt; the budget ends it with the reason."""
    d = _dispatcher(batch_endpoint, max_submit_job_attempts=2)
    before = batch_endpoint.counts().get("submit_job", 0)
    d.submit([standin_spec(["true"], fail_before_start=True)])
    deadline = time.monotonic() + 60
    events: list[Any] = []
    while time.monotonic() < deadline and not any(e.state.terminal for e in events):
        for job in d._queue:
            job.next_try = 0  # skip the backoff wait; the attempt count is what is under test
        events += list(d.events())
        time.sleep(0.1)
    final = [e for e in events if e.state.terminal]
    assert final and final[0].state is JobState.FAILED and "Host EC2 instance terminated" in final[0].reason
    assert batch_endpoint.counts()["submit_job"] - before == 2, "exactly one SubmitJob per attempt"


def test_describe_jobs_is_chunked_by_100(batch_endpoint: BatchEndpoint) -> None:
    """One poll of 250 active jobs costs ceil(250/100) = 3 DescribeJobs calls."""
    d = _dispatcher(batch_endpoint)
    d.submit([standin_spec(["sleep", "5"]) for _ in range(250)])
    before = batch_endpoint.counts().get("describe_jobs", 0)
    d._next_poll = 0
    list(d.events())
    assert batch_endpoint.counts()["describe_jobs"] - before == math.ceil(250 / 100)
    d.stop(terminate=True)


def test_poll_interval_backs_off_while_nothing_changes(batch_endpoint: BatchEndpoint) -> None:
    """Not every scheduler loop polls: an idle stretch doubles the interval up to the maximum."""
    now = [0.0]
    d = _dispatcher(batch_endpoint, clock=lambda: now[0], poll_interval_min=1.0, poll_interval_max=8.0)
    def running() -> set[str]:
        listed = batch_endpoint.client.list_jobs(jobQueue=batch_endpoint.queue, jobStatus="RUNNING")
        return {j["jobId"] for j in listed["jobSummaryList"]}

    already = running()
    d.submit([standin_spec(["sleep", "30"])])
    wait_for(lambda: bool(running() - already), 30, "the stand-in job to reach RUNNING")
    polls = []
    before = batch_endpoint.counts().get("describe_jobs", 0)
    for tick in range(60):  # 60 scheduler loops, one simulated second apart
        now[0] = float(tick)
        list(d.events())
        polls.append(batch_endpoint.counts()["describe_jobs"] - before)
    assert polls[-1] <= 10, f"{polls[-1]} DescribeJobs calls in 60 loops"
    assert d._interval == 8.0
    d.stop(terminate=True)


def test_cancel_terminates_the_job(batch_endpoint: BatchEndpoint) -> None:
    """revoke_task -> cancel -> TerminateJob; the job ends failed."""
    d = _dispatcher(batch_endpoint)
    spec = standin_spec(["sleep", "60"])
    d.submit([spec])
    before = batch_endpoint.counts().get("terminate_job", 0)
    d.cancel(spec.ref, "revoked")
    assert batch_endpoint.counts()["terminate_job"] - before == 1
    events = _until_terminal(d)
    assert events[-1].state is JobState.FAILED


def test_adoption_by_external_id(batch_endpoint: BatchEndpoint) -> None:
    """A restarted scheduler adopts jobs by their Batch job id and keeps receiving their states."""
    first = _dispatcher(batch_endpoint)
    spec = standin_spec(["sleep", "1"])
    first.submit([spec])
    batch_id = next(e.external_id for e in first.events() if e.state is JobState.PENDING)
    second = _dispatcher(batch_endpoint)
    assert second.adopt({spec.ref: batch_id, "ti:gone:1": "no-such-job", "ti:none:1": None}) == {spec.ref: batch_id}
    assert _until_terminal(second)[-1].state is JobState.SUCCESS


def test_health_check_fails_clearly_on_a_bad_endpoint(batch_endpoint: BatchEndpoint) -> None:
    """A wrong endpoint or region stops start-up with a message naming the connection."""
    bad = boto3.client("batch", region_name=REGION, endpoint_url="http://127.0.0.1:1",
                       aws_access_key_id="x", aws_secret_access_key="x")
    d = BatchDispatcher(_settings(batch_endpoint), lambda: bad)
    with pytest.raises(BatchConfigError, match="aws_conn_id"):
        d.start("sched")
