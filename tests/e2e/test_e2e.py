"""Real Airflow scheduler + api-server + dag-processor, real Redis, gateway and agent processes."""

from __future__ import annotations

import itertools
import signal
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import psutil
import pytest
import sqlalchemy as sa

from edgeexec.localstack.stack import AgentSpec
from tests.e2e.conftest import E2E, HEARTBEAT
from tests.servers import wait_for

pytestmark = pytest.mark.e2e


def test_features_the_edge_provider_supports_all_work(e2e: E2E) -> None:
    """Bash/Python operators, @task flavours, branch, virtualenv, mapping, XCom, Variable, Connection,
    setup/teardown all succeed on an edge agent."""
    run_id, state = e2e.run("e2e_features")
    tis = {(t.task_id, t.map_index): t.state for t in e2e.task_instances("e2e_features", run_id)}
    assert tis.pop(("not_chosen", -1)) == "skipped"
    assert {s for s in tis.values()} == {"success"}, tis
    assert {k[0] for k in tis} >= {"bash", "python_operator", "task_bash", "consume", "double", "in_virtualenv",
                                   "variable_and_connection", "create_resource", "delete_resource", "chosen"}
    assert sum(1 for k in tis if k[0] == "double") == 3
    assert state == "success"


def test_task_routed_to_queue_runs_on_the_agent_serving_it(e2e: E2E) -> None:
    """queue='other' reaches only the agent started with -q other."""
    run_id, state = e2e.run("e2e_other_queue")
    assert state == "success"
    (ti,) = e2e.task_instances("e2e_other_queue", run_id)
    assert e2e.job_of(ti.id, ti.try_number)["agent"] == "agent-other"
    # the id the scheduler stored when it set the task QUEUED is the job's id
    assert e2e.redis.get(e2e.keys.ref(f"ti:{uuid.UUID(str(ti.id))}:{ti.try_number}")) == \
        uuid.UUID(str(ti.external_executor_id)).hex


def test_failing_task_is_retried_once_then_failed(e2e: E2E) -> None:
    """retries=1: two tries, both run by an agent, the task ends failed.

    A task that raises is a *handled* failure: the supervisor reports it to the Execution API and
    exits 0, so the job records a completed workload; Airflow's DB holds the task's outcome.
    """
    run_id, state = e2e.run("e2e_retry")
    assert state == "failed"
    (ti,) = e2e.task_instances("e2e_retry", run_id)
    assert (ti.state, ti.try_number) == ("failed", 2)
    ids = e2e.ti_ids("e2e_retry", run_id, "always_fails")
    for try_number in (1, 2):
        job = e2e.job_of(ids[try_number], try_number)
        assert (job["state"], job["exit"], job["agent"]) == ("success", "0", "agent-main"), job


def test_pool_slots_never_exceed_agent_concurrency(e2e: E2E) -> None:
    """Four pool_slots=2 tasks on a concurrency-3 agent: slot records never exceed 3, tasks never overlap."""
    samples: list[int] = []
    stop = threading.Event()

    def watch() -> None:
        key = e2e.keys.agent("agent-slots")
        while not stop.is_set():
            samples.append(int(e2e.redis.hget(key, "used") or 0))
            time.sleep(0.01)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        run_id, state = e2e.run("e2e_pool_slots")
    finally:
        stop.set()
        watcher.join()
    assert state == "success"
    assert max(samples) == 2, "a 2-slot task ran alone each time"  # 2 + 2 > 3
    assert all(s <= 3 for s in samples)
    spans = sorted((t.start_date, t.end_date) for t in e2e.task_instances("e2e_pool_slots", run_id))
    for (_, end), (start, _) in itertools.pairwise(spans):
        assert start >= end, f"two 2-slot tasks overlapped on a 3-slot agent: {spans}"


def test_agent_killed_mid_task_fails_it_fast_and_retry_runs(e2e: E2E, tmp_path: Path) -> None:
    """SIGKILL an agent mid-task: its task dies with it, the executor fails the try within 3 heartbeat
    intervals (so retries apply), the slots are released, and the retry runs on a restarted agent."""
    marker = tmp_path / "task.pid"
    run_id = e2e.stack.trigger("e2e_long", {"marker": str(marker)})
    wait_for(marker.exists, 120, "the long task to start")
    wait_for(lambda: marker.read_text().strip() != "", 10, "the task to write its pid")
    task_pid = int(marker.read_text())
    (ti,) = e2e.task_instances("e2e_long", run_id)
    agent = e2e.stack.procs["agent-agent-victim"]
    agent.send(signal.SIGKILL)
    killed_at = time.monotonic()

    wait_for(lambda: not psutil.pid_exists(task_pid) or psutil.Process(task_pid).status() == "zombie", 10,
             "the task process to die with its agent")
    wait_for(lambda: e2e.job_of(ti.id, 1)["state"] == "failed", 3 * HEARTBEAT + 5, "the executor to fail the try")
    elapsed = time.monotonic() - killed_at
    assert elapsed <= 3 * HEARTBEAT + 1, f"failing the lost task took {elapsed:.1f} s"
    assert "lost" in e2e.job_of(ti.id, 1)["reason"]
    assert e2e.redis.hget(e2e.keys.agent("agent-victim"), "used") == "0"

    agent.stop()
    e2e.stack.start_agent(next(a for a in e2e.stack.cfg.agents if a.name == "agent-victim"))
    assert e2e.stack.wait_for_run("e2e_long", run_id) == "success"
    (ti,) = e2e.task_instances("e2e_long", run_id)
    assert (ti.state, ti.try_number) == ("success", 2)
    assert e2e.job_of(ti.id, 2)["agent"] == "agent-victim"


DRAIN_AGENT = AgentSpec("agent-drain", ("drain",), 2)


def _start_drain_run(e2e: E2E, tmp_path: Path, sleep: float) -> tuple[str, Path]:
    marker = tmp_path / f"drain-{uuid.uuid4().hex[:6]}.pid"
    run_id = e2e.stack.trigger("e2e_drain", {"marker": str(marker), "sleep": sleep})
    wait_for(lambda: marker.exists() and marker.read_text() != "", 120, "the task to start")
    return run_id, marker


def test_sigint_drains_running_task_finishes_and_no_new_work_is_taken(e2e: E2E, tmp_path: Path) -> None:
    """SIGINT: the running task completes, the agent takes no new job, then exits 0."""
    agent = e2e.stack.start_agent(DRAIN_AGENT)
    run_id, _ = _start_drain_run(e2e, tmp_path, sleep=6)
    agent.send(signal.SIGINT)
    wait_for(lambda: e2e.redis.hget(e2e.keys.agent("agent-drain"), "state") == "terminating", 10,
             "the agent to report it is draining")
    queued_later = e2e.stack.trigger("e2e_drain", {"marker": str(tmp_path / "never"), "sleep": 0})
    assert e2e.stack.wait_for_run("e2e_drain", run_id) == "success"
    assert agent.popen.wait(60) == 0
    assert not (tmp_path / "never").exists(), "a draining agent took new work"
    e2e.stack.start_agent(DRAIN_AGENT)  # the next agent picks the waiting run up
    assert e2e.stack.wait_for_run("e2e_drain", queued_later) == "success"
    e2e.stack.procs["agent-agent-drain"].stop(sig=signal.SIGINT)


def test_sigterm_drains_and_terminates_running_tasks(e2e: E2E, tmp_path: Path) -> None:
    """SIGTERM: running tasks are terminated (they fail in Airflow), the agent exits 0 promptly."""
    agent = e2e.stack.start_agent(DRAIN_AGENT)
    run_id, marker = _start_drain_run(e2e, tmp_path, sleep=300)
    task_pid = int(marker.read_text())
    agent.send(signal.SIGTERM)
    assert agent.popen.wait(60) == 0
    assert not psutil.pid_exists(task_pid) or psutil.Process(task_pid).status() == "zombie"
    assert e2e.stack.wait_for_run("e2e_drain", run_id, timeout=120) == "failed"
    (ti,) = e2e.task_instances("e2e_drain", run_id)
    assert ti.state == "failed"


def test_deadline_callback_runs_on_an_agent(e2e: E2E) -> None:
    """ExecuteCallback workloads (a missed deadline's SyncCallback) are dispatched and run like tasks."""
    marker = Path("/tmp/edgeexec-e2e-callbacks/e2e")
    marker.unlink(missing_ok=True)
    _, state = e2e.run("e2e_deadline_callback")
    assert state == "success"
    wait_for(marker.exists, 60, "the deadline callback to run")
    jobs = [e2e.redis.hgetall(k) for k in e2e.redis.scan_iter(match=f"{e2e.keys.prefix}:job:*", count=1000)]
    callbacks = [j for j in jobs if j.get("kind") == "callback"]
    assert callbacks and all(j["state"] == "success" for j in callbacks), callbacks
    marker.unlink()


def test_batch_executor_runs_tasks_as_batch_jobs(e2e: E2E) -> None:
    """BatchExecutor beside EdgeExecutor: success, handled failure, crash and executor_config overrides."""
    run_id, state = e2e.run("e2e_batch")
    assert state == "failed"
    tis = {t.task_id: t for t in e2e.task_instances("e2e_batch", run_id)}
    assert {k: t.state for k, t in tis.items()} == {
        "batch_ok": "success", "batch_fails": "failed", "batch_crash": "failed", "batch_overrides": "success",
        "batch_mapped_queue": "success", "batch_oom": "failed"}
    with e2e.db.connect() as c:
        ext = dict(c.execute(sa.text("select task_id, external_executor_id from task_instance "
                                     "where dag_id = 'e2e_batch' and run_id = :r"), {"r": run_id}).all())
    def settled() -> dict[str, Any]:
        found = {d["jobId"]: d for d in e2e.batch.client.describe_jobs(jobs=list(ext.values()))["jobs"]}
        assert all(d["status"] in ("SUCCEEDED", "FAILED") for d in found.values())
        return found

    # a task reports its state to Airflow just before its process (the Batch job) exits
    wait_for(lambda: bool(settled()), 60, "the Batch jobs to finish")
    jobs = settled()
    assert jobs[ext["batch_ok"]]["status"] == "SUCCEEDED"
    crash = jobs[ext["batch_crash"]]
    assert crash["status"] == "FAILED", "a crashed task must not look like a SUCCEEDED job"
    assert crash["attempts"][-1]["container"]["exitCode"] != 0
    overrides = jobs[ext["batch_overrides"]]
    env = {e["name"]: e["value"] for e in overrides["container"]["environment"]}
    assert env["E2E_OVERRIDE"] == "from-executor-config" and env["AIRFLOW_IS_EXECUTOR_CONTAINER"] == "true"
    assert overrides["tags"] == {"deployment": "e2e", "e2e_tag": "yes"}
    assert jobs[ext["batch_mapped_queue"]]["jobQueue"].endswith("/e2e-gpu"), "queue='gpu' -> queue_map's job queue"
    assert jobs[ext["batch_ok"]]["jobQueue"].endswith(f"/{e2e.batch.queue}"), "an unmapped queue -> job_queue"
    # the container was killed for memory before the task could log anything: the executor says why
    log = e2e.stack.task_log("e2e_batch", run_id, "batch_oom", tis["batch_oom"].try_number)
    assert "out of memory: " in log and "OutOfMemoryError" in log and "exit code 137" in log, log[-2000:]


def test_running_task_log_is_served_by_airflow_without_a_shared_volume(e2e: E2E) -> None:
    """Agents write logs to their own disk; Airflow's REST API shows a running task's log, streamed
    by the agent through the gateway into Redis and served by EdgeExecutor.get_task_log."""
    marker = uuid.uuid4().hex
    run_id = e2e.stack.trigger("e2e_live_log", {"marker": marker, "sleep": 15})
    wait_for(lambda: e2e.stack.api("GET", f"/dags/e2e_live_log/dagRuns/{run_id}/taskInstances/chatty")["state"]
             == "running", 120, "the task to run")
    wait_for(lambda: marker in e2e.stack.task_log("e2e_live_log", run_id, "chatty"), 30,
             "the live log line in Airflow's REST API")
    ti = e2e.stack.api("GET", f"/dags/e2e_live_log/dagRuns/{run_id}/taskInstances/chatty")
    assert ti["state"] == "running", "the log was read while the task was still running"
    assert "log streamed by agent agent-main" in e2e.stack.task_log("e2e_live_log", run_id, "chatty")
    assert not list((e2e.stack.home / "logs").rglob("*e2e_live_log*")), "the api-server had a local copy"
    assert e2e.stack.wait_for_run("e2e_live_log", run_id) == "success"
    finished = e2e.stack.task_log("e2e_live_log", run_id, "chatty")
    assert marker in finished and "log streamed by agent agent-main" in finished, "the finished task's log"


def test_gateway_mounted_in_the_airflow_api_server(e2e: E2E) -> None:
    """With mount_gateway on, agents can connect to Airflow's own API server instead of a separate gateway."""
    import urllib.request

    with urllib.request.urlopen(f"{e2e.stack.api_url}/edgeexec/health", timeout=10) as r:
        assert r.status == 200
    url = f"ws://127.0.0.1:{e2e.stack.api_port}/edgeexec/ws/agent"
    agent = e2e.stack.start_agent(AgentSpec("agent-viaapi", ("viaapi",), 1), "--url", url)
    try:
        run_id, state = e2e.run("e2e_via_api_server")
        assert state == "success"
        (ti,) = e2e.task_instances("e2e_via_api_server", run_id)
        assert e2e.job_of(ti.id, ti.try_number)["agent"] == "agent-viaapi"
        assert e2e.redis.hget(e2e.keys.agent("agent-viaapi"), "gw") != e2e.redis.hget(
            e2e.keys.agent("agent-main"), "gw"), "the agent is held by the mounted gateway"
    finally:
        agent.stop()


def test_a_task_that_prints_its_environment_shows_no_edgeexec_secret(e2e: E2E) -> None:
    """Tasks do not inherit the agent's token or the gateway secret: not in the task's log as Airflow
    serves it, not in the log files on the agent's disk, not in the copy streamed into Redis."""
    run_id, state = e2e.run("e2e_print_env")
    assert state == "success"
    log = e2e.stack.task_log("e2e_print_env", run_id, "print_env")
    assert "AIRFLOW_HOME=" in log, "the task printed its environment"
    secret = e2e.stack.secret
    assert secret not in log and "AIRFLOW__EDGEEXEC__TOKEN" not in log
    on_disk = [p for p in (e2e.stack.home / "agent-logs").rglob("*") if p.is_file() and "e2e_print_env" in str(p)]
    assert on_disk, "the agent wrote the task's log to its disk"
    for path in on_disk:
        assert secret not in path.read_text(errors="replace"), f"the agent token in {path}"
    (ti,) = e2e.task_instances("e2e_print_env", run_id)
    job = e2e.job_of(ti.id, ti.try_number)
    stored = e2e.redis.get(e2e.keys.log(job["id"])) or ""
    assert "AIRFLOW_HOME=" in stored and secret not in stored


def _connection_test(e2e: E2E, path: str, queue: str) -> dict[str, Any]:
    """'Test connection' as the UI sends it (REST API), polled until the worker reported."""
    import orjson

    conn_id = f"fs_{uuid.uuid4().hex[:8]}"
    queued = e2e.stack.api("POST", "/connections/enqueue-test", {
        "connection_id": conn_id, "conn_type": "fs", "extra": orjson.dumps({"path": path}).decode(),
        "executor": "edgeexec.EdgeExecutor", "queue": queue})

    def poll() -> dict[str, Any]:
        out: dict[str, Any] = e2e.stack.api("GET", "/connections/enqueue-test",
                                            headers={"Airflow-Connection-Test-Token": queued["token"]})
        return out

    wait_for(lambda: poll()["state"] in ("success", "failed"), 120, f"the connection test of {conn_id}", 0.5)
    return poll()


def test_test_connection_runs_on_an_agent_serving_its_queue(e2e: E2E, tmp_path: Path) -> None:
    """A path only 'the site' has tests green there and red where it is missing; both ran as jobs on
    the agent serving the test's queue, which reported the result to Airflow itself."""
    site_only = tmp_path / "only-at-the-site"
    site_only.mkdir()
    green = _connection_test(e2e, str(site_only), "other")
    red = _connection_test(e2e, str(tmp_path / "missing"), "other")
    assert (green["state"], red["state"]) == ("success", "failed"), (green, red)
    assert "is existing" in str(green["result_message"]) and "does not exist" in str(red["result_message"])
    jobs = [e2e.redis.hgetall(e2e.keys.job(str(e2e.redis.get(k))))
            for k in e2e.redis.scan_iter(match=e2e.keys.ref("ct:*"), count=1000)]
    assert len(jobs) >= 2 and {j["agent"] for j in jobs} == {"agent-other"}, jobs
    assert all(j["kind"] == "connection_test" and j["state"] == "success" for j in jobs), jobs
