"""`edgeexec standalone` as a user runs it: their own DAGs folder, their agents, a triggerer; it
prints where everything is, and Ctrl-C stops everything."""

from __future__ import annotations

import contextlib
import os
import re
import shlex
import signal
import subprocess
import time
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import orjson
import psutil
import pytest
import redis

from edgeexec.localstack.processes import BIN, wait_for
from edgeexec.store.keys import DEFAULT_PREFIX, Keys

pytestmark = pytest.mark.e2e

USER_DAG = '''
from datetime import datetime, timedelta

from airflow.providers.standard.triggers.temporal import TimeDeltaTrigger
from airflow.sdk import BaseOperator, dag, task


class WaitDeferred(BaseOperator):
    """Always defers (a sensor whose moment has already passed would not): 3 s in the triggerer."""

    def execute(self, context):
        self.defer(trigger=TimeDeltaTrigger(timedelta(seconds=3)), method_name="resume")

    def resume(self, context, event=None):
        return "resumed after deferring"


@dag(dag_id="my_own_dag", schedule=None, start_date=datetime(2024, 1, 1), catchup=False)
def my_own_dag():
    wait = WaitDeferred(task_id="wait_deferred")

    @task(queue="other")
    def on_the_other_agent() -> str:
        return "ran on the other queue"

    @task
    def on_the_default_agent() -> str:
        return "ran on the default queue"

    wait >> on_the_other_agent() >> on_the_default_agent()


my_own_dag()
'''


def _api(base: str, method: str, path: str, body: Any = None) -> Any:
    req = urllib.request.Request(f"{base}/api/v2{path}", data=orjson.dumps(body) if body is not None else None,
                                 method=method, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as resp:
        return orjson.loads(resp.read() or b"null")


def _read_until_ready(proc: subprocess.Popen[str], timeout: float) -> list[str]:
    assert proc.stdout is not None
    lines = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        lines.append(line)
        if "Press Ctrl-C" in line or not line:
            break
    return lines


def test_standalone_runs_your_dags_on_your_agents_and_ctrl_c_stops_every_process(tmp_path: Path) -> None:
    """--dags-folder and two --agent specs: a deferrable task defers (triggerer) and resumes, a
    queue='other' task runs on the second agent, the default one on the first; the printed
    command for one more agent is complete; SIGINT stops every process it started."""
    dags = tmp_path / "my-dags"
    dags.mkdir()
    (dags / "my_own_dag.py").write_text(USER_DAG)
    env = {**os.environ, "AIRFLOW_HOME": str(tmp_path / "user-home"), "AIRFLOW__CORE__PARALLELISM": "7"}
    proc = subprocess.Popen([str(BIN / "edgeexec"), "standalone", "--home", str(tmp_path / "standalone"),
                             "--dags-folder", str(dags), "--agent", "main-agent:default:2",
                             "--agent", "side-agent:other:2"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True, env=env)
    children: list[psutil.Process] = []
    extra: subprocess.Popen[bytes] | None = None
    try:
        lines = _read_until_ready(proc, 300)
        text = "".join(lines)
        url = re.search(r"Airflow UI:\s+(\S+)", text).group(1)  # type: ignore[union-attr]
        redis_url = re.search(r"Redis:\s+(\S+)", text).group(1)  # type: ignore[union-attr]
        assert str(dags) in text and "side-agent (queues other" in text and "agent start -q other" in text
        children = psutil.Process(proc.pid).children(recursive=True)
        cmdlines = [" ".join(c.cmdline()) for c in children]
        for component in ("api_server", "scheduler", "dag-processor", "triggerer", "edgeexec gateway"):
            assert any(component in c for c in cmdlines), f"no {component} among {cmdlines}"
        scheduler = next(c for c in children if "scheduler" in " ".join(c.cmdline()))
        assert scheduler.environ()["AIRFLOW__CORE__PARALLELISM"] == "7", "the caller's settings apply"
        wait_for(lambda: _api(url, "GET", "/dags/my_own_dag") is not None, 180, "my_own_dag to be parsed", 1.0)
        run_id = _api(url, "POST", "/dags/my_own_dag/dagRuns", {"logical_date": None})["dag_run_id"]
        wait_for(lambda: _api(url, "GET", f"/dags/my_own_dag/dagRuns/{run_id}")["state"] in ("success", "failed"),
                 300, "the run to finish", 1.0)
        tis = {t["task_id"]: t for t in _api(url, "GET", f"/dags/my_own_dag/dagRuns/{run_id}/taskInstances")[
            "task_instances"]}
        assert {t: ti["state"] for t, ti in tis.items()} == dict.fromkeys(tis, "success"), tis
        r = redis.Redis.from_url(redis_url, decode_responses=True)
        keys = Keys(DEFAULT_PREFIX)

        def agent_of(task_id: str) -> str:
            ti = tis[task_id]
            job = r.get(keys.ref(f"ti:{uuid.UUID(str(ti['id']))}:{ti['try_number']}"))
            return str(r.hget(keys.job(str(job)), "agent"))

        assert agent_of("on_the_other_agent") == "side-agent" and agent_of("on_the_default_agent") == "main-agent"

        # the printed command starts a complete agent: with side-agent in maintenance, it runs 'other'
        extra_cmd = next(ln.strip() for ln in lines if "agent start -q other" in ln)
        words = shlex.split(extra_cmd)
        assigns = dict(w.split("=", 1) for w in words if "=" in w and w.split("=", 1)[0].isupper())
        argv = [w for w in words if w.split("=", 1)[0] not in assigns]
        extra = subprocess.Popen(argv, env={**os.environ, **assigns}, stdout=subprocess.DEVNULL,
                                 stderr=subprocess.STDOUT, start_new_session=True)
        wait_for(lambda: r.hget(keys.agent("agent-other"), "connected") == "1", 120,
                 "the agent started with the printed command to connect")
        local = subprocess.run([str(BIN / "agent"), "maintenance", "on", "--wait"], capture_output=True, text=True,
                               env={**os.environ, "AIRFLOW__EDGEEXEC__NAME": "side-agent"}, timeout=60)
        assert local.returncode == 0, local.stderr
        second = _api(url, "POST", "/dags/my_own_dag/dagRuns", {"logical_date": None})["dag_run_id"]
        wait_for(lambda: _api(url, "GET", f"/dags/my_own_dag/dagRuns/{second}")["state"] in ("success", "failed"),
                 300, "the second run to finish", 1.0)
        tis = {t["task_id"]: t for t in _api(url, "GET", f"/dags/my_own_dag/dagRuns/{second}/taskInstances")[
            "task_instances"]}
        assert agent_of("on_the_other_agent") == "agent-other", tis
        os.killpg(extra.pid, signal.SIGINT)
        assert extra.wait(60) == 0
        xcom = _api(url, "GET", f"/dags/my_own_dag/dagRuns/{run_id}/taskInstances/wait_deferred/xcomEntries/"
                               "return_value")
        assert "resumed after deferring" in str(xcom["value"]), "the deferred task resumed on an agent"
        assert tis["wait_deferred"]["try_number"] == 1 and agent_of("wait_deferred") == "main-agent"
        proc.send_signal(signal.SIGINT)
        assert proc.wait(120) == 130
        _, alive = psutil.wait_procs(children, timeout=30)
        assert not alive, f"left running: {[p.cmdline() for p in alive]}"
    finally:
        if proc.poll() is None:  # the test failed midway: stop the stack as a user would, then by PID
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(120)
            except subprocess.TimeoutExpired:
                proc.kill()
        for child in children:
            with contextlib.suppress(psutil.NoSuchProcess):
                child.kill()
        if extra is not None and extra.poll() is None:
            os.killpg(extra.pid, signal.SIGKILL)
