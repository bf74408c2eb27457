"""One real deployment for the fault-injection suite, and the ledger every fault test is judged by.

Airflow 3 (scheduler, api-server, dag-processor) on a private PostgreSQL; Redis with AOF on a
fixed port so it can be restarted in place; two gateways on that Redis; four agents, two on each
gateway, one of them behind a TCP proxy that can cut its network. Every agent keeps an execution
journal, so "ran twice" is read from what the hosts actually started, not from Redis.
"""

from __future__ import annotations

import collections
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import pytest
import redis
import sqlalchemy as sa

from agent import journal
from edgeexec.airflow.redis_dispatcher import RedisDispatcher
from edgeexec.localstack.processes import Proc, RedisServer, free_port, wait_for
from edgeexec.localstack.stack import AgentSpec, LocalStack, StackConfig
from edgeexec.store.keys import Keys
from tests.faults.netcut import NetCut
from tests.servers import PostgresServer

DAGS = Path(__file__).parent / "dags"
HEARTBEAT = 2.0
FULL = os.environ.get("EDGEEXEC_FAULTS_FULL", "") == "1"
RESULTS = Path(__file__).parent.parent.parent / "bench" / "results"


@dataclass
class Figures:
    """What the suite did, printed at the end of the run (and kept as JSON under bench/results)."""

    tasks: int = 0
    faults: collections.Counter[str] = field(default_factory=collections.Counter)
    lost: int = 0
    duplicated: int = 0
    leaked_slots: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {"tasks": self.tasks, "faults_injected": sum(self.faults.values()), "faults": dict(self.faults),
                "lost": self.lost, "duplicated": self.duplicated, "leaked_slots": self.leaked_slots,
                "size": "full" if FULL else "ci"}


FIGURES = Figures()


class Faults:
    """The running deployment plus the handles a fault test needs."""

    def __init__(self, stack: LocalStack, home: Path, netcut: NetCut, redis_server: RedisServer) -> None:
        self.stack, self.home, self.netcut, self.redis_server = stack, home, netcut, redis_server
        self.db = sa.create_engine(stack.sql_alchemy_conn)
        self.redis = redis.Redis.from_url(stack.redis_url, decode_responses=True, socket_timeout=5)
        self.keys = Keys()
        self.gw_b_port = free_port()
        self.agents: dict[str, tuple[AgentSpec, str]] = {}

    # ------------------------------------------------------------------ processes

    def gateway_url(self, which: str) -> str:
        port = {"a": self.stack.gateway_port, "b": self.gw_b_port, "cut": self.netcut.port}[which]
        return f"ws://127.0.0.1:{port}/ws/agent"

    def start_gateway_b(self) -> Proc:
        return self.stack.start_gateway("gateway-b", self.gw_b_port)

    def start_agent(self, spec: AgentSpec, via: str) -> Proc:
        self.agents[spec.name] = (spec, via)
        return self.stack.start_agent(spec, "--url", self.gateway_url(via), "--journal", str(self.journal(spec.name)),
                                      "--kill-grace", "5")

    def agent(self, name: str) -> Proc:
        return self.stack.procs[f"agent-{name}"]

    def journal(self, name: str) -> Path:
        return self.home / "journals" / f"{name}.jsonl"

    def wait_connected(self, names: list[str] | None = None, timeout: float = 120) -> None:
        names = names or list(self.agents)

        def connected() -> bool:
            return all(self.redis.hget(self.keys.agent(n), "connected") == "1" for n in names)

        wait_for(connected, timeout, f"agents {names} to be connected", 0.5)

    # ------------------------------------------------------------------ Airflow

    def run(self, dag_id: str, conf: dict[str, Any] | None = None) -> str:
        return self.stack.trigger(dag_id, conf)

    def wait(self, dag_id: str, run_id: str, timeout: float = 600) -> str:
        return self.stack.wait_for_run(dag_id, run_id, timeout)

    def tis(self, dag_id: str, run_id: str) -> list[Any]:
        with self.db.connect() as c:
            return list(c.execute(sa.text("select id, task_id, map_index, state, try_number from task_instance "
                                          "where dag_id = :d and run_id = :r"), {"d": dag_id, "r": run_id}))

    def cancel(self, ref: str, reason: str) -> None:
        """What a scheduler's revoke does: the executor's dispatcher cancels the job through Redis."""
        d = RedisDispatcher.from_url(self.stack.redis_url, self.keys.prefix, liveness_s=6, job_ttl_s=600)
        d.start("fault-test")
        d.cancel(ref, reason)
        d.stop(terminate=False)

    def running_count(self, dag_id: str, run_id: str) -> int:
        return sum(1 for t in self.tis(dag_id, run_id) if t.state == "running")

    # ------------------------------------------------------------------ when a test fails

    def diagnose(self) -> str:
        """A short account of the deployment for a failed test: which processes died, where the
        tasks and jobs stand, each agent's record, and the scheduler's latest warnings."""
        lines = [f"dead processes: {[(n, p.popen.returncode) for n, p in self.stack.procs.items() if not p.alive()]}"]
        with self.db.connect() as c:
            rows = c.execute(sa.text("select dag_id, state, count(*) from task_instance "
                                     "where state not in ('success', 'failed', 'skipped', 'upstream_failed') "
                                     "group by dag_id, state"))
            lines.append(f"unfinished task instances: {[tuple(r) for r in rows]}")
        jobs: collections.Counter[tuple[str, str]] = collections.Counter()
        for key in self.redis.scan_iter(self.keys.job("*"), count=1000):
            state, agent = self.redis.hmget(key, "state", "agent")
            if state not in ("success", "failed", "cancelled"):
                jobs[(str(state), str(agent))] += 1
        lines.append(f"unfinished jobs by (state, agent): {dict(jobs)}")
        for name in self.agents:
            rec = self.redis.hmget(self.keys.agent(name), "connected", "state", "used", "instance", "gw")
            lines.append(f"agent {name}: connected={rec[0]} state={rec[1]} used={rec[2]} instance={rec[3]} "
                         f"gw={rec[4]} pid={self.agent(name).pid} alive={self.agent(name).alive()}")
        noted = [ln for ln in self.stack.procs["scheduler"].tail(2000).splitlines() if "WARNING" in ln or "ERROR" in ln]
        lines += ["scheduler warnings:", *[ln[:300] for ln in noted[-12:]]]
        for name, proc in self.stack.procs.items():  # why a process died is in its last lines
            if not proc.alive():
                lines += [f"last lines of {name}:", *[ln[:300] for ln in proc.tail(40).splitlines()]]
        return "\n".join(lines)

    # ------------------------------------------------------------------ the ledger

    def starts(self) -> list[dict[str, Any]]:
        return [r for name in self.agents for r in journal.read(self.journal(name)) if r["event"] == "start"]

    def duplicated_tries(self) -> dict[tuple[str, int], list[str]]:
        """(task instance id, try) started more than once, anywhere in the fleet -> the agents."""
        seen: dict[tuple[str, int], list[str]] = collections.defaultdict(list)
        for r in self.starts():
            if "ti_id" in r:
                seen[(str(r["ti_id"]), int(r["try_number"]))].append(r["agent"])
        return {k: v for k, v in seen.items() if len(v) > 1}

    def used_slots(self) -> dict[str, int]:
        return {n: int(self.redis.hget(self.keys.agent(n), "used") or 0) for n in self.agents}

    def assigned_jobs(self) -> dict[str, set[str]]:
        return {n: set(self.redis.smembers(self.keys.agent_jobs(n))) for n in self.agents}

    def check_ledger(self, dag_id: str, run_id: str, expect: str = "success") -> None:
        """No task lost (all reached ``expect``), none run twice, and every slot given back."""
        tis = self.tis(dag_id, run_id)
        FIGURES.tasks += len(tis)
        lost = [t for t in tis if t.state != expect]
        FIGURES.lost += len(lost)
        dups = self.duplicated_tries()
        FIGURES.duplicated += len(dups)
        try:
            wait_for(lambda: not any(self.used_slots().values()) and not any(self.assigned_jobs().values()), 60,
                     "every agent's slots to return to 0", 0.5)
        except TimeoutError:
            FIGURES.leaked_slots += sum(self.used_slots().values())
            raise AssertionError(f"slots leaked: {self.used_slots()} jobs still assigned: {self.assigned_jobs()}") from None
        assert not lost, f"{len(lost)} task(s) not {expect}: {[(t.task_id, t.map_index, t.state) for t in lost][:10]}"
        assert not dups, f"tries started more than once: {dups}"


AGENTS = (
    (AgentSpec("fa-direct", ("faults",), 3), "a"),
    (AgentSpec("fa-cut", ("faults", "netcut"), 3), "cut"),
    (AgentSpec("fb-1", ("faults", "gwb"), 3), "b"),
    (AgentSpec("fb-2", ("faults",), 3), "b"),
)


@pytest.fixture(scope="session")
def faults(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Faults]:
    home = Path(tmp_path_factory.mktemp("faults"))
    pg = PostgresServer().start()
    rs = RedisServer(home / "redis", appendonly=True, extra=["--appendfsync", "always"]).start()
    extra = {
        "AIRFLOW__EDGEEXEC__TASK_STALE_AFTER": "6",
        "AIRFLOW__WORKERS__MIN_HEARTBEAT_INTERVAL": "1",
        "AIRFLOW__CORE__PARALLELISM": "64",
        "AIRFLOW__CORE__MAX_ACTIVE_TASKS_PER_DAG": "256",
        "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
        "AIRFLOW__SCHEDULER__SCHEDULER_HEALTH_CHECK_THRESHOLD": "10",
        "AIRFLOW__SCHEDULER__ORPHANED_TASKS_CHECK_INTERVAL": "5",
        "AIRFLOW__SCHEDULER__TASK_QUEUED_TIMEOUT": "120",
        "AIRFLOW__SCHEDULER__TASK_QUEUED_TIMEOUT_CHECK_INTERVAL": "5",
        "AIRFLOW__EXECUTION_API__JWT_EXPIRATION_TIME": "20",
        "AIRFLOW__LOGGING__LOGGING_CONFIG_CLASS": "edgeexec.logging_config.LOGGING_CONFIG",
    }
    stack = LocalStack(StackConfig(home=home, dags_folder=DAGS, sql_alchemy_conn=pg.url, redis_url=rs.url, agents=(),
                                   heartbeat_interval=HEARTBEAT, extra_env=extra))
    netcut = NetCut(stack.gateway_port).start()
    f = Faults(stack, home, netcut, rs)
    try:
        stack.start()
        f.start_gateway_b()
        for spec, via in AGENTS:
            f.start_agent(spec, via)
        stack.wait_for_dags([f"faults_{q}" for q in ("faults", "netcut", "gwb")] + ["faults_too_big", "faults_cancel"])
        f.wait_connected()
        yield f
    except Exception:
        stack.print_tails()
        raise
    finally:
        stack.stop()
        netcut.stop()
        rs.stop()
        pg.stop()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """A failed fault test reports the deployment's state with its failure (CI keeps no logs)."""
    outcome = yield
    report = outcome.get_result()
    faults = getattr(item, "funcargs", {}).get("faults")
    if report.when == "call" and report.failed and isinstance(faults, Faults):
        try:
            report.sections.append(("deployment state", faults.diagnose()))
        except Exception as exc:  # noqa: BLE001 - a report must not hide the failure it explains
            report.sections.append(("deployment state", f"could not be read: {exc!r}"))


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not FIGURES.tasks and not FIGURES.faults:
        return
    figures = FIGURES.as_dict()
    terminalreporter.section("fault-injection figures")
    for key in ("size", "tasks", "faults_injected", "lost", "duplicated", "leaked_slots"):
        terminalreporter.write_line(f"{key:>16}: {figures[key]}")
    terminalreporter.write_line(f"{'by fault':>16}: {', '.join(f'{k}={v}' for k, v in sorted(FIGURES.faults.items()))}")
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "faults.json").write_bytes(orjson.dumps({**figures, "at": time.time()}, option=orjson.OPT_INDENT_2))
