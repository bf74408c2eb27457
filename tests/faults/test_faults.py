"""Fault injection against a real deployment: each test breaks something, then reads the ledger.

The ledger (conftest.Faults.check_ledger) asserts from Airflow's metadata DB that every task
reached its final state, from the agents' execution journals that no (task instance, try) was
started twice anywhere in the fleet, and from Redis that every slot came back.
"""

from __future__ import annotations

import random
import signal
import subprocess
import time
import urllib.request
import uuid

import pytest

from edgeexec.dispatch import task_ref
from edgeexec.localstack.processes import BIN, wait_for
from edgeexec.tokens import store as token_store
from tests.faults.conftest import AGENTS, FIGURES, FULL, Faults

pytestmark = pytest.mark.faults


def _wait_running(f: Faults, dag_id: str, run_id: str, at_least: int = 1, timeout: float = 180) -> None:
    wait_for(lambda: f.running_count(dag_id, run_id) >= at_least, timeout,
             f"{at_least} task(s) of {dag_id} to run", 0.5)


def test_agent_sigkill_mid_task_retries_elsewhere(faults: Faults) -> None:
    """The killed agent's tries fail (their processes die with it); retries finish the run."""
    run_id = faults.run("faults_faults", {"n": 12, "seconds": 3})
    _wait_running(faults, "faults_faults", run_id, 4)
    faults.agent("fb-2").send(signal.SIGKILL)
    FIGURES.faults["agent SIGKILL"] += 1
    time.sleep(2)
    faults.start_agent(*AGENTS[3])
    assert faults.wait("faults_faults", run_id) == "success"
    faults.check_ledger("faults_faults", run_id)


def test_network_cut_then_restore_delivers_what_happened_meanwhile(faults: Faults) -> None:
    """The agent behind the proxy loses its gateway for longer than the liveness window while its
    tasks keep running; after the network returns, their results arrive and nothing ran twice."""
    run_id = faults.run("faults_netcut", {"n": 6, "seconds": 6})
    _wait_running(faults, "faults_netcut", run_id, 3)
    faults.netcut.cut()
    FIGURES.faults["network cut"] += 1
    time.sleep(4 * 2.0 + 4)  # past the liveness window (3 heartbeats) and the agent's ping timeout
    faults.netcut.restore()
    assert faults.wait("faults_netcut", run_id) == "success"
    faults.check_ledger("faults_netcut", run_id)
    assert faults.redis.hget(faults.keys.agent("fa-cut"), "connected") == "1"


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL], ids=["SIGTERM", "SIGKILL"])
def test_gateway_restart_agents_reconnect_and_jobs_keep_flowing(faults: Faults, sig: int) -> None:
    run_id = faults.run("faults_faults", {"n": 24, "seconds": 2})
    _wait_running(faults, "faults_faults", run_id, 4)
    faults.stack.procs["gateway-b"].stop(sig=sig)
    FIGURES.faults[f"gateway {signal.Signals(sig).name}"] += 1
    time.sleep(2)
    faults.start_gateway_b()
    assert faults.wait("faults_faults", run_id) == "success"
    faults.check_ledger("faults_faults", run_id)
    faults.wait_connected()


def _admin_cli(faults: Faults, *args: str) -> subprocess.CompletedProcess[str]:
    token, _ = token_store.create(faults.redis, faults.keys, agent="", queues=(), admin=True, ttl_s=600)
    env = {**faults.stack.env(), "AIRFLOW__EDGEEXEC__ADMIN_TOKEN": token}
    return subprocess.run([str(BIN / "agent"), *args, "--url", faults.gateway_url("a")], env=env,
                          capture_output=True, text=True, timeout=60)


def test_maintenance_for_an_agent_on_the_other_gateway_is_routed_through_redis(faults: Faults) -> None:
    """The operator talks to gateway A; fb-1 is connected to gateway B."""
    out = _admin_cli(faults, "maintenance", "on", "--name", "fb-1", "--wait", "-c", "cross-gateway")
    assert out.returncode == 0, out.stderr
    FIGURES.faults["cross-gateway command"] += 1
    assert faults.redis.hget(faults.keys.agent("fb-1"), "state") == "maintenance mode"
    run_id = faults.run("faults_gwb", {"n": 1, "seconds": 0.1})  # only fb-1 serves gwb
    time.sleep(6)
    assert {t.state for t in faults.tis("faults_gwb", run_id)} <= {"queued", "scheduled", "success", None}
    assert not any(t.state == "running" for t in faults.tis("faults_gwb", run_id))
    out = _admin_cli(faults, "maintenance", "off", "--name", "fb-1", "--wait")
    assert out.returncode == 0, out.stderr
    assert faults.wait("faults_gwb", run_id) == "success"
    faults.check_ledger("faults_gwb", run_id)


def test_cancel_reaches_an_agent_through_its_own_gateway(faults: Faults) -> None:
    """A cancel from a scheduler (which only talks to Redis) ends the task on the agent at once."""
    run_id = faults.run("faults_cancel")
    _wait_running(faults, "faults_cancel", run_id)
    (ti,) = faults.tis("faults_cancel", run_id)
    ref = task_ref(uuid.UUID(str(ti.id)), ti.try_number)
    faults.cancel(ref, "cancelled by the fault test")
    FIGURES.faults["cross-gateway cancel"] += 1
    assert faults.wait("faults_cancel", run_id, timeout=120) == "failed"
    job = faults.redis.hgetall(faults.keys.job(faults.redis.get(faults.keys.ref(ref)) or ""))
    assert job["state"] == "failed" and "cancelled by the fault test" in job["reason"], job
    faults.check_ledger("faults_cancel", run_id, expect="failed")


def test_redis_restart_with_aof_loses_nothing(faults: Faults) -> None:
    run_id = faults.run("faults_faults", {"n": 24, "seconds": 2})
    _wait_running(faults, "faults_faults", run_id, 4)
    faults.redis_server.stop()
    FIGURES.faults["redis restart"] += 1
    time.sleep(3)
    faults.redis_server.start()
    assert faults.wait("faults_faults", run_id) == "success"
    faults.check_ledger("faults_faults", run_id)
    faults.wait_connected()


def test_scheduler_crash_running_tasks_adopted_queued_not_duplicated(faults: Faults) -> None:
    run_id = faults.run("faults_faults", {"n": 30, "seconds": 3})
    _wait_running(faults, "faults_faults", run_id, 6)
    faults.stack.procs["scheduler"].stop(sig=signal.SIGKILL)
    FIGURES.faults["scheduler SIGKILL"] += 1
    time.sleep(3)
    faults.stack.start_airflow("scheduler")
    assert faults.wait("faults_faults", run_id) == "success"
    faults.check_ledger("faults_faults", run_id)


def test_scheduler_killed_between_queued_and_submit_runs_each_try_once(faults: Faults) -> None:
    """The window a crash can hit: the scheduler committed the tasks QUEUED (with their pre-assigned
    job ids) but could not submit them (Redis is down, so every submit fails and is retried), and
    is SIGKILLed. The next scheduler finds no job under those ids, Airflow resets the tries, and
    each task runs exactly once: nothing lost, nothing doubled."""
    faults.redis_server.stop()
    FIGURES.faults["redis restart"] += 1
    run_id = faults.run("faults_faults", {"n": 8, "seconds": 1})
    # the run's first task (the mapped ones wait for it): QUEUED in the database, in no Redis
    wait_for(lambda: any(t.state == "queued" for t in faults.tis("faults_faults", run_id)), 180,
             "a task QUEUED while no submit can succeed", 0.5)
    assert not [t for t in faults.tis("faults_faults", run_id) if t.state in ("running", "success")]
    faults.stack.procs["scheduler"].stop(sig=signal.SIGKILL)
    FIGURES.faults["scheduler SIGKILL"] += 1
    faults.redis_server.start()
    faults.stack.start_airflow("scheduler")
    assert faults.wait("faults_faults", run_id) == "success"
    faults.check_ledger("faults_faults", run_id)
    faults.wait_connected()


def test_same_agent_name_refused_while_alive_then_accepted_once_dead(faults: Faults) -> None:
    spec, via = AGENTS[0]
    original = faults.agent(spec.name)
    twin = faults.stack._spawn("twin", [str(BIN / "agent"), "start", "-q", ",".join(spec.queues), "-c", "1",
                                         "--name", spec.name, "--url", faults.gateway_url(via),
                                         "--journal", str(faults.journal(spec.name))], faults.stack.agent_env())
    wait_for(lambda: "already connected from another live process" in twin.tail(50), 60, "the twin to be refused")
    instance = faults.redis.hget(faults.keys.agent(spec.name), "instance")
    original.send(signal.SIGKILL)
    FIGURES.faults["agent SIGKILL"] += 1
    wait_for(lambda: faults.redis.hget(faults.keys.agent(spec.name), "instance") != instance, 60,
             "the twin to take the name over")
    twin.stop(sig=signal.SIGINT)
    faults.stack.procs.pop("twin")
    faults.start_agent(spec, via)
    faults.wait_connected([spec.name])


@pytest.mark.timeout(3600 if FULL else 600)
def test_churn_agents_restarted_at_random(faults: Faults) -> None:
    """Short tasks through the fleet while agents are drained, SIGTERMed or SIGKILLed at random."""
    n = 1000 if FULL else 80
    rng = random.Random(7)
    run_id = faults.run("faults_faults", {"n": n, "seconds": 0.2})
    deadline = time.monotonic() + (3600 if FULL else 600)
    restarts = 0
    while faults.stack.run_state("faults_faults", run_id) not in ("success", "failed"):
        assert time.monotonic() < deadline, "churn run did not finish"
        time.sleep(rng.uniform(3, 8))
        spec, via = rng.choice(AGENTS)
        sig = rng.choice([signal.SIGINT, signal.SIGTERM, signal.SIGKILL])
        faults.agent(spec.name).stop(sig=sig, timeout=60)
        FIGURES.faults[f"churn agent {signal.Signals(sig).name}"] += 1
        faults.start_agent(spec, via)
        restarts += 1
    assert restarts >= 1
    assert faults.wait("faults_faults", run_id) == "success"
    faults.check_ledger("faults_faults", run_id)
    faults.wait_connected()


def test_task_bigger_than_every_agent_is_reported_not_silently_stuck(faults: Faults) -> None:
    """pool_slots=64 on a queue whose agents have 3 slots: the scheduler log, the task log, the
    status figures and /metrics say so; the job waits for task_queued_timeout (documented rule)."""
    run_id = faults.run("faults_too_big")
    wait_for(lambda: faults.tis("faults_too_big", run_id)[0].state == "queued", 120, "the task to be queued", 0.5)
    (ti,) = faults.tis("faults_too_big", run_id)
    ref = task_ref(uuid.UUID(str(ti.id)), ti.try_number)
    job_key = faults.keys.job(faults.redis.get(faults.keys.ref(ref)) or "")
    wait_for(lambda: bool(faults.redis.hget(job_key, "blocked")), 60, "the executor to report the job", 1)
    assert "needs 64 slots" in faults.redis.hget(job_key, "blocked")
    assert "needs 64 slots" in faults.stack.procs["scheduler"].tail(400)
    metrics = urllib.request.urlopen(f"http://127.0.0.1:{faults.stack.gateway_port}/metrics", timeout=10).read()
    assert b'edgeexec_queue_too_big_jobs{queue="faults"} 1.0' in metrics
    assert "needs 64 slots" in faults.stack.task_log("faults_too_big", run_id, "needs_64_slots", ti.try_number)
    # what task_queued_timeout does when it expires: revoke (cancel the pending job), fail the task
    faults.stack.api("PATCH", f"/dags/faults_too_big/dagRuns/{run_id}/taskInstances/needs_64_slots",
                     {"new_state": "failed"})
    faults.cancel(ref, "revoked")
    assert faults.wait("faults_too_big", run_id) == "failed"
    faults.check_ledger("faults_too_big", run_id, expect="failed")


def test_task_queued_longer_than_the_jwt_lifetime_still_runs(faults: Faults) -> None:
    """[execution_api] jwt_expiration_time is 20 s in this stack; the task waits 30 s for its agent.

    Airflow 3.3 signs the workload token for [scheduler] task_queued_timeout, the same window after
    which the scheduler revokes and requeues a queued task with a fresh token, so a task that waits
    for an agent starts with a valid token (docs/operations.md)."""
    assert _admin_cli(faults, "maintenance", "on", "--name", "fb-1", "--wait").returncode == 0
    run_id = faults.run("faults_gwb", {"n": 1, "seconds": 0.1})
    wait_for(lambda: any(t.state == "queued" for t in faults.tis("faults_gwb", run_id)), 120, "a queued task", 0.5)
    time.sleep(30)
    FIGURES.faults["queued past JWT lifetime"] += 1
    assert _admin_cli(faults, "maintenance", "off", "--name", "fb-1", "--wait").returncode == 0
    assert faults.wait("faults_gwb", run_id) == "success"
    faults.check_ledger("faults_gwb", run_id)
