"""Operating agents: the `agent` CLI against a real gateway and a real agent process."""

from __future__ import annotations

import os
import signal
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
import redis

from edgeexec.localstack.processes import BIN, Proc, wait_for
from edgeexec.store.keys import Keys
from edgeexec.tokens import store as token_store
from tests.servers import start_gateway


class Fleet:
    """A tokens-only gateway, an admin token, and agent processes started on demand."""

    def __init__(self, tmp: Path, redis_url: str) -> None:
        self.tmp, self.redis_url = tmp, redis_url
        self.keys = Keys(f"op{uuid.uuid4().hex[:8]}")
        self.client = redis.Redis.from_url(redis_url, decode_responses=True)
        self.port, self.gateway = start_gateway(redis_url, self.keys.prefix, tmp / "gateway.log",
                                                "--heartbeat-interval", "1")
        self.url = f"ws://127.0.0.1:{self.port}/ws/agent"
        self.admin, _ = token_store.create(self.client, self.keys, agent="", queues=(), admin=True, ttl_s=None)
        self.agents: dict[str, Proc] = {}

    def env(self, **extra: str) -> dict[str, str]:
        return {"PATH": f"{BIN}:{os.environ.get('PATH', '')}", "AIRFLOW_HOME": str(self.tmp / "airflow"),
                "AIRFLOW__EDGEEXEC__URL": self.url, **extra}

    def start_agent(self, name: str, queues: str = "q1,q2") -> Proc:
        token, _ = token_store.create(self.client, self.keys, agent=name, queues=(*tuple(queues.split(",")), "q3"),
                                      admin=False, ttl_s=None)
        proc = Proc([str(BIN / "agent"), "start", "-q", queues, "-c", "2", "--name", name],
                    env=self.env(AIRFLOW__EDGEEXEC__TOKEN=token), log=self.tmp / f"agent-{name}.log")
        self.agents[name] = proc
        wait_for(lambda: self.record(name).get("connected") == "1", 60, f"agent {name} to connect")
        return proc

    def record(self, name: str) -> dict[str, str]:
        return dict(self.client.hgetall(self.keys.agent(name)))

    def cli(self, *args: str, token: str | None = None, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        env = self.env(AIRFLOW__EDGEEXEC__ADMIN_TOKEN=token or self.admin)
        return subprocess.run([str(BIN / "agent"), *args], env=env, capture_output=True, text=True, timeout=timeout)

    def stop(self) -> None:
        for p in self.agents.values():
            p.stop()
        self.gateway.stop()


@pytest.fixture(scope="module")
def fleet(redis_server: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    f = Fleet(Path(tmp_path_factory.mktemp("fleet")), redis_server.url)
    yield f
    f.stop()


def _status(fleet: Fleet, name: str) -> dict[str, Any]:
    out = fleet.cli("status", "--json", "--name", name)
    assert out.returncode == 0, out.stderr
    lines = [orjson.loads(line) for line in out.stdout.splitlines()]
    return next(m["agent"] for m in lines if m["type"] == "agent")


def test_status_shows_state_queues_slots_and_metrics(fleet: Fleet) -> None:
    """`agent status --json` reports the agent's state, queues, slots and system metrics."""
    name = f"st-{uuid.uuid4().hex[:6]}"
    fleet.start_agent(name)
    wait_for(lambda: "cpu_percent" in _status(fleet, name)["metrics"], 30, "a heartbeat with metrics")
    a = _status(fleet, name)
    assert (a["state"], a["queues"], a["concurrency"], a["used"], a["connected"]) == ("idle", ["q1", "q2"], 2, 0, True)
    table = fleet.cli("status")
    assert table.returncode == 0 and name in table.stdout and "q1,q2" in table.stdout


def test_maintenance_over_the_socket_and_it_survives_a_restart(fleet: Fleet) -> None:
    """maintenance on --wait reaches 'maintenance mode'; after a restart the agent is still in it."""
    name = f"mt-{uuid.uuid4().hex[:6]}"
    proc = fleet.start_agent(name)
    out = fleet.cli("maintenance", "on", "--comments", "swapping a disk", "--wait", "--name", name)
    assert out.returncode == 0, out.stderr
    assert "maintenance mode" in out.stdout
    assert fleet.record(name)["accepting"] == "0"
    proc.send(signal.SIGINT)
    assert proc.popen.wait(60) == 0
    fleet.start_agent(name)
    wait_for(lambda: _status(fleet, name)["state"] == "maintenance mode", 30, "maintenance after restart")
    assert _status(fleet, name)["comments"] == "swapping a disk"
    out = fleet.cli("maintenance", "off", "--wait", "--name", name)
    assert out.returncode == 0, out.stderr
    assert _status(fleet, name)["state"] == "idle" and fleet.record(name)["accepting"] == "1"


def test_watch_streams_changes_as_they_happen(fleet: Fleet) -> None:
    """status --watch --json prints the snapshot, then a line for each change (no polling)."""
    name = f"wt-{uuid.uuid4().hex[:6]}"
    fleet.start_agent(name)
    env = fleet.env(AIRFLOW__EDGEEXEC__ADMIN_TOKEN=fleet.admin)
    watch = subprocess.Popen([str(BIN / "agent"), "status", "--watch", "--json", "--name", name], env=env,
                             stdout=subprocess.PIPE, text=True)
    try:
        assert watch.stdout is not None
        first = orjson.loads(watch.stdout.readline())
        assert first["agent"]["name"] == name
        assert fleet.cli("maintenance", "on", "--name", name).returncode == 0
        for _ in range(50):
            msg = orjson.loads(watch.stdout.readline())
            if msg.get("type") == "agent" and msg["agent"]["state"].startswith("maintenance"):
                break
        else:
            raise AssertionError("no maintenance delta in the watch stream")
    finally:
        watch.terminate()
        watch.wait(10)
    fleet.cli("maintenance", "off", "--name", name)


def test_set_queues_and_concurrency_and_stop(fleet: Fleet) -> None:
    """Remote set-queues / set-concurrency re-register the agent; stop --wait drains it to exit."""
    name = f"sq-{uuid.uuid4().hex[:6]}"
    proc = fleet.start_agent(name)
    assert fleet.cli("set-queues", "q3", "--name", name).returncode == 0
    wait_for(lambda: _status(fleet, name)["queues"] == ["q3"], 30, "the new queues")
    assert fleet.cli("set-concurrency", "5", "--name", name).returncode == 0
    wait_for(lambda: _status(fleet, name)["concurrency"] == 5, 30, "the new concurrency")
    out = fleet.cli("stop", "--wait", "--name", name)
    assert out.returncode == 0, out.stderr
    assert proc.popen.wait(30) == 0


@pytest.mark.parametrize(
    ("args", "agent_token", "code", "needle"),
    [
        (("status",), True, 2, "admin token is required"),
        (("maintenance", "on", "--name", "no-such-agent"), False, 1, "no agent named 'no-such-agent'"),
        (("shutdown", "--name", "ghost-agent"), False, 1, "no agent named"),
    ],
)
def test_refusals_are_specific(fleet: Fleet, args: tuple[str, ...], agent_token: bool, code: int,
                               needle: str) -> None:
    """A non-admin token and an unknown agent each get a clear, specific refusal."""
    token = None
    if agent_token:
        token, _ = token_store.create(fleet.client, fleet.keys, agent="a", queues=("q",), admin=False, ttl_s=None)
    out = fleet.cli(*args, token=token)
    assert out.returncode == code and needle in out.stderr, (out.returncode, out.stderr)


def test_shutdown_all_asks_for_confirmation(fleet: Fleet) -> None:
    """A command for every agent is not sent without a 'yes'."""
    env = fleet.env(AIRFLOW__EDGEEXEC__ADMIN_TOKEN=fleet.admin)
    out = subprocess.run([str(BIN / "agent"), "shutdown", "--all"], env=env, input="no\n", capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 1 and "cancelled" in out.stderr
    assert all(p.alive() for p in fleet.agents.values() if p.popen.returncode is None)


def test_no_token_in_status_output_or_logs(fleet: Fleet) -> None:
    """Tokens never appear in the status stream or in agent/gateway logs."""
    out = fleet.cli("status", "--json").stdout
    assert "eex_" not in out
    for log in fleet.tmp.glob("*.log"):
        assert "eex_" not in log.read_text(), log


def test_local_commands_on_the_agents_host_need_no_token(fleet: Fleet) -> None:
    """On the agent's host (same user), status / maintenance / stop reach the local agent over its
    owner-only control socket, without a gateway URL or admin token."""
    from agent.local_control import socket_path

    name = f"lc-{uuid.uuid4().hex[:6]}"
    proc = fleet.start_agent(name)
    wait_for(lambda: socket_path(name).exists(), 30, "the local control socket")
    assert oct(socket_path(name).stat().st_mode & 0o777) == "0o600"
    env = {"PATH": f"{BIN}:{os.environ.get('PATH', '')}", "AIRFLOW__EDGEEXEC__NAME": name}

    def local(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(BIN / "agent"), *args], env=env, capture_output=True, text=True, timeout=60)

    out = local("status", "--json")
    assert out.returncode == 0, out.stderr
    assert orjson.loads(out.stdout.splitlines()[0])["agent"]["state"] == "idle"
    out = local("maintenance", "on", "--comments", "local check", "--wait")
    assert out.returncode == 0 and "maintenance mode" in out.stdout, out.stderr
    wait_for(lambda: fleet.record(name).get("maintenance") == "1", 10, "the fleet record to follow")
    assert local("maintenance", "off", "--wait").returncode == 0
    out = local("stop", "--wait")
    assert out.returncode == 0, out.stderr
    assert proc.popen.wait(30) == 0
    assert not socket_path(name).exists(), "the socket is removed when the agent exits"
