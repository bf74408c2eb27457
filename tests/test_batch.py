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
from batchexec.explain import Cause, explain
from batchexec.kwargs import camelize_keys, command_for, submit_kwargs
from batchexec.settings import BatchSettings, Route
from batchexec.throttle import SubmitLimiter
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


def _required(**over: str) -> dict[str, str]:
    env = {f"AIRFLOW__AWS_BATCH_EXECUTOR__{k}": "x" for k in ("JOB_QUEUE", "JOB_DEFINITION", "JOB_NAME", "REGION_NAME")}
    env.update({f"AIRFLOW__AWS_BATCH_EXECUTOR__{k.upper()}": v for k, v in over.items()})
    return env


def test_queue_map_routes_airflow_queues_and_rejects_bad_entries() -> None:
    """A name, or an object with job_queue/job_definition; unmapped queues keep the defaults; a
    wrong entry stops start-up naming the queue."""
    settings = BatchSettings.load(env_lookup("aws_batch_executor", _required(
        queue_map='{"gpu": "gpu-q", "big": {"job_queue": "big-q", "job_definition": "big-def"}, '
                  '"def-only": {"job_definition": "d2"}}')))
    assert settings.route("gpu") == Route("gpu-q", "x")
    assert settings.route("big") == Route("big-q", "big-def")
    assert settings.route("def-only") == Route("x", "d2")
    assert settings.route("default") == Route("x", "x")
    for bad in ('{"gpu": ""}', '{"gpu": {"jobqueue": "q"}}', '{"gpu": 3}', '["gpu"]', "{nope"):
        with pytest.raises(BatchConfigError, match="queue_map"):
            BatchSettings.load(env_lookup("aws_batch_executor", _required(queue_map=bad)))
    with pytest.raises(BatchConfigError, match="submit_rate must not be negative"):
        BatchSettings.load(env_lookup("aws_batch_executor", _required(submit_rate="-1")))


def test_queue_map_beats_submit_job_kwargs_and_executor_config_beats_both() -> None:
    out = _kwargs(extra={"job_queue": "from-kwargs"}, executor_config=None)
    assert out["jobQueue"] == "from-kwargs"
    mapped = {"jobQueue": "mapped", "jobDefinition": "mapped-def"}
    out = submit_kwargs(job_name="n", job_queue="q", job_definition="def", extra={"job_queue": "from-kwargs"},
                        executor_config=None, command=["x"], mapped=mapped)
    assert (out["jobQueue"], out["jobDefinition"]) == ("mapped", "mapped-def")
    out = submit_kwargs(job_name="n", job_queue="q", job_definition="def", extra={}, mapped=mapped,
                        executor_config={"jobQueue": "from-task"}, command=["x"])
    assert out["jobQueue"] == "from-task"


@pytest.mark.parametrize(("desc", "cause", "words"), [
    ({"status": "FAILED", "statusReason": "Essential container in task exited", "startedAt": 1,
      "container": {"reason": "OutOfMemoryError: Container killed due to memory usage", "exitCode": 137}},
     Cause.OUT_OF_MEMORY, "exit code 137"),
    ({"status": "FAILED", "startedAt": 1, "container": {"exitCode": 137}}, Cause.OUT_OF_MEMORY, "exit code 137"),
    ({"status": "FAILED", "statusReason": "Host EC2 (instance i-0abc) terminated.", "startedAt": 1,
      "attempts": [{"startedAt": 1, "container": {"exitCode": None}}]}, Cause.HOST_TERMINATED, "i-0abc"),
    ({"status": "FAILED", "statusReason": "Job attempt duration exceeded timeout", "startedAt": 1},
     Cause.TIMEOUT, "exceeded"),
    ({"status": "FAILED", "statusReason": "CannotPullContainerError: pull access denied"}, Cause.IMAGE, "denied"),
    ({"status": "FAILED", "statusReason": "Terminated by the scheduler", "startedAt": 1,
      "container": {"exitCode": 143}}, Cause.TERMINATED, "exit code 143"),
    ({"status": "FAILED", "statusReason": "MISCONFIGURATION:JOB_RESOURCE_REQUIREMENT"}, Cause.NEVER_STARTED,
     "MISCONFIGURATION"),
    ({"status": "FAILED", "startedAt": 1, "attempts": [{"container": {"exitCode": 3}}]}, Cause.EXIT_CODE, "exit code 3"),
    ({"status": "FAILED", "startedAt": 1}, Cause.UNKNOWN, "AWS Batch reported the job FAILED"),
    ({"status": "FAILED", "container": "not a dict", "attempts": ["junk"], "startedAt": 1}, Cause.UNKNOWN, "FAILED"),
])
def test_why_a_job_failed_names_the_cause_and_keeps_aws_words(desc: dict[str, Any], cause: Cause, words: str) -> None:
    failure = explain(desc)
    assert failure.cause is cause and failure.text.startswith(cause.value) and words in failure.text, failure


def test_submit_limiter_paces_halves_when_throttled_and_recovers() -> None:
    limiter = SubmitLimiter(10)
    assert sum(limiter.take(100.0) for _ in range(50)) == 10, "a burst of one second's worth"
    assert sum(limiter.take(100.0 + t / 100) for t in range(1, 101)) == 10, "then 10 per second"
    limiter.throttled()
    assert limiter.current == 5
    for _ in range(10):
        limiter.succeeded()
    assert limiter.current == 10, "back to the configured rate, never above"
    assert all(SubmitLimiter(0).take(0.0) for _ in range(1000)), "0 = no limit"


# ---------------------------------------------------------------------------- real endpoint


def _settings(ep: BatchEndpoint, **over: Any) -> BatchSettings:
    base = dict(job_queue=ep.queue, job_definition=ep.job_definition("plain"), job_name="airflow-task",
                region_name=REGION, max_submit_job_attempts=3, poll_interval_min=0.2, poll_interval_max=1.0,
                submit_rate=0.0)
    base.update(over)
    return BatchSettings(**base)


def _dispatcher(ep: BatchEndpoint, clock: Any = time.monotonic, **over: Any) -> BatchDispatcher:
    d = BatchDispatcher(_settings(ep, **over), lambda: ep.client, clock=clock)
    d.start("sched")
    return d


def standin_spec(command: list[str] | None = None, fail_before_start: bool = False, queue: str = "default",
                 **knobs: str) -> JobSpec:
    env = [{"name": k, "value": v} for k, v in knobs.items()]
    if command is not None:
        env.append({"name": "STANDIN_COMMAND", "value": orjson.dumps(command).decode()})
    if fail_before_start:
        env.append({"name": "STANDIN_FAIL_BEFORE_START", "value": "1"})
    job = uuid.uuid4().hex
    return JobSpec(job, f"ti:{job}:1", "task", queue, 1, 0, "{}",
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


def _no_waits(d: BatchDispatcher) -> None:
    for job in d._queue:
        job.next_try = 0  # skip backoff waits: what is under test is what happens, not how long it takes


def _run_all(d: BatchDispatcher, jobs: int, timeout: float = 90) -> dict[str, Any]:
    """job id -> its terminal event, driving the dispatcher as the scheduler loop does."""
    deadline, final = time.monotonic() + timeout, {}
    while time.monotonic() < deadline and len(final) < jobs:
        _no_waits(d)
        final.update((e.job_id, e) for e in d.events() if e.state.terminal)
        time.sleep(0.1)
    assert len(final) == jobs, f"{len(final)} of {jobs} jobs ended: {final}"
    return final


def test_airflow_queues_go_to_their_mapped_job_queues(batch_endpoint: BatchEndpoint) -> None:
    gpu = batch_endpoint.job_queue("edgeexec-gpu")
    d = _dispatcher(batch_endpoint, queue_map=orjson.dumps({"gpu": gpu}).decode())
    mapped, plain = standin_spec(["true"], queue="gpu"), standin_spec(["true"], queue="other")
    d.submit([mapped, plain])
    ids = {e.job_id: e.external_id for e in d.events() if e.state is JobState.PENDING}
    queues = {d_["jobId"]: d_["jobQueue"] for d_ in batch_endpoint.client.describe_jobs(jobs=list(ids.values()))["jobs"]}
    assert queues[ids[mapped.job_id]].endswith(f"/{gpu}") and queues[ids[plain.job_id]].endswith(f"/{batch_endpoint.queue}")
    assert {e.state for e in _run_all(d, 2).values()} == {JobState.SUCCESS}


def test_health_check_names_a_job_queue_that_does_not_exist(batch_endpoint: BatchEndpoint) -> None:
    d = BatchDispatcher(_settings(batch_endpoint, queue_map='{"gpu": "no-such-queue"}'), lambda: batch_endpoint.client)
    with pytest.raises(BatchConfigError, match="no-such-queue"):
        d.start("sched")


def test_throttling_spends_no_attempt_and_fails_no_task(batch_endpoint: BatchEndpoint) -> None:
    """Five TooManyRequestsException answers in a row against a budget of two attempts: the job still
    runs, and the submit rate halved meanwhile."""
    d = _dispatcher(batch_endpoint, max_submit_job_attempts=2, submit_rate=50.0)
    rule = {"action": "submitjob", "status": 429, "code": "TooManyRequestsException", "times": 5}
    with batch_endpoint.injecting([rule]):
        d.submit([standin_spec(["true"])])
        final = _run_all(d, 1)
    assert [e.state for e in final.values()] == [JobState.SUCCESS]
    assert d._limiter.current < 50


def test_one_poisoned_job_never_stalls_the_others(batch_endpoint: BatchEndpoint) -> None:
    """A SubmitJob that always fails, one answered with garbage, and a DescribeJobs that fails
    whenever one job's id is in it: those three jobs fail with their reason, the rest succeed."""
    d = _dispatcher(batch_endpoint)
    good = [standin_spec(["sh", "-c", "sleep 1"]) for _ in range(6)]
    refused = standin_spec(["true"], POISON="refused")
    garbled = standin_spec(["true"], POISON="garbled")
    undescribable = standin_spec(["sh", "-c", "sleep 2"], POISON="undescribable")
    rules = [{"action": "submitjob", "match": "refused", "status": 400, "code": "ClientException",
              "message": "bad things"},
             {"action": "submitjob", "match": "garbled", "body": "{\"no\": \"job id\"}"}]
    with batch_endpoint.injecting(rules):
        d.submit([*good[:3], refused, garbled, undescribable, *good[3:]])
        first = list(d.events())
    pending = {e.job_id: e.external_id for e in first if e.state is JobState.PENDING}
    early = {e.job_id: e for e in first if e.state.terminal}
    assert set(early) == {refused.job_id, garbled.job_id}, "failed at submit, and only they"
    poisoned_id = pending[undescribable.job_id]
    rules.append({"action": "describejobs", "match": poisoned_id, "status": 400, "code": "ClientException",
                  "message": "cannot describe this one"})
    with batch_endpoint.injecting(rules):
        final = {**early, **_run_all(d, 7)}
    assert all(final[s.job_id].state is JobState.SUCCESS for s in good)
    assert "bad things" in final[refused.job_id].reason
    assert "without a job id" in final[garbled.job_id].reason
    assert "cannot describe this one" in final[undescribable.job_id].reason
    assert final[undescribable.job_id].state is JobState.FAILED


def test_out_of_memory_is_named_with_its_exit_code(batch_endpoint: BatchEndpoint) -> None:
    d = _dispatcher(batch_endpoint)
    spec = standin_spec(["sleep", "30"], STANDIN_OOM="1")
    d.submit([spec])
    (event,) = _run_all(d, 1).values()
    assert event.state is JobState.FAILED and event.exit_code == 137
    assert event.reason.startswith("out of memory: OutOfMemoryError") and "more memory" in event.reason


def test_a_job_stuck_runnable_is_submitted_again_then_failed_saying_so(batch_endpoint: BatchEndpoint) -> None:
    d = _dispatcher(batch_endpoint, runnable_timeout=1.0, max_submit_job_attempts=2)
    before = batch_endpoint.counts()
    d.submit([standin_spec(["true"], STANDIN_STAY_RUNNABLE="1")])
    (event,) = _run_all(d, 1).values()
    assert event.state is JobState.FAILED and "never started: RUNNABLE for" in event.reason, event
    after = batch_endpoint.counts()
    assert after["submit_job"] - before.get("submit_job", 0) == 2, "one resubmission within the budget"
    assert after["terminate_job"] - before.get("terminate_job", 0) == 2, "each stuck job is terminated"


def test_every_setting_is_in_docs_batch_md_with_its_default() -> None:
    """docs/batch.md's table is what users read first: every option, with the default the code uses."""
    import dataclasses
    from pathlib import Path

    text = (Path(__file__).parent.parent / "docs" / "batch.md").read_text()
    rows = [ln for ln in text.splitlines() if ln.startswith("| `")]
    for f in dataclasses.fields(BatchSettings):
        row = next((r for r in rows if f"`{f.name}`" in r.split("|")[1]), None)
        assert row is not None, f"{f.name} is not in docs/batch.md's table"
        default = "required" if f.default == "" else f"{f.default:g}" if isinstance(f.default, float) else str(f.default)
        assert default in row, f"{f.name}: default {default!r} not in {row!r}"


def test_a_running_jobs_log_is_read_live_from_cloudwatch(batch_endpoint: BatchEndpoint) -> None:
    """What get_task_log shows while the task runs: the lines its container wrote so far, from the
    job's CloudWatch Logs stream (the stand-in ships them as Batch's awslogs driver does)."""
    from batchexec.logs import read_live

    logs = boto3.client("logs", region_name=REGION, endpoint_url=batch_endpoint.url,
                        aws_access_key_id="testing", aws_secret_access_key="testing")
    d = _dispatcher(batch_endpoint)
    d.submit([standin_spec(["sh", "-c", "echo first line; echo second line; sleep 30"])])
    batch_id = next(e.external_id for e in d.events() if e.state is JobState.PENDING)
    assert read_live(batch_endpoint.client, logs, "no-such-job")[0] == ["batchexec: AWS Batch has no job no-such-job"]
    wait_for(lambda: "second line" in "".join(read_live(batch_endpoint.client, logs, batch_id)[1]), 30,
             "the running job's lines in CloudWatch")
    sources, text = read_live(batch_endpoint.client, logs, batch_id)
    assert "CloudWatch Logs /aws/batch/job/" in sources[0]
    assert text[0].splitlines() == ["first line", "second line"]
    assert "first line" in read_live(batch_endpoint.client, logs, batch_id, max_events=1)[1][0]
    assert "the first 1 lines are shown" in read_live(batch_endpoint.client, logs, batch_id, max_events=1)[1][0]
    d.stop(terminate=True)
