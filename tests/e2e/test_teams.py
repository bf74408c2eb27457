"""Multi-team: two Airflow teams whose agents serve the same queue name, each team's fleet apart.

A deployment of its own ([core] multi_team, teams team_a and team_b, a DAG bundle each, an
EdgeExecutor per team and one for the team-less DAGs, a gateway per team). team_b keeps its state
in another Redis database, set the way Airflow defines per-team overrides
(AIRFLOW__TEAM_B___EDGEEXEC__REDIS_URL), which its executor and its gateway both read.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
import redis
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from edgeexec import protocol as p
from edgeexec.localstack.processes import BIN, RedisServer, wait_for
from edgeexec.localstack.stack import AgentSpec, LocalStack, StackConfig, StackUser
from edgeexec.store.keys import DEFAULT_PREFIX, Keys, keyspace

pytestmark = pytest.mark.e2e
TEAMS = Path(__file__).parent / "teams"
AGENTS = {"": "main", "team_a": "a-1", "team_b": "b-1"}


class Teams:
    def __init__(self, stack: LocalStack, redis_url: str) -> None:
        self.stack = stack
        self.db0 = redis.Redis.from_url(redis_url, decode_responses=True)
        self.db1 = redis.Redis.from_url(redis_url.rsplit("/", 1)[0] + "/1", decode_responses=True)

    def store(self, team: str) -> tuple[redis.Redis, Keys]:
        return (self.db1 if team == "team_b" else self.db0), Keys(keyspace(DEFAULT_PREFIX, team))

    def cli(self, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
        full = {**self.stack.env(), **env}
        return subprocess.run([str(BIN / args[0]), *args[1:]], env=full, capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="module")
def teams(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Teams]:
    home = Path(tmp_path_factory.mktemp("teams"))
    server = RedisServer(home / "redis").start()
    db1 = server.url.rsplit("/", 1)[0] + "/1"
    stack = LocalStack(StackConfig(
        home=home, dags_folder=TEAMS / "common", redis_url=server.url, heartbeat_interval=3.0,
        teams={"team_a": TEAMS / "team_a", "team_b": TEAMS / "team_b"},
        agents=tuple(AgentSpec(name, ("default",), 2, team) for team, name in AGENTS.items()),
        users=(StackUser("admin", "admin"), StackUser("alice", "op", ("team_a",)), StackUser("bob", "op", ("team_b",))),
        extra_env={"AIRFLOW__TEAM_B___EDGEEXEC__REDIS_URL": db1, "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
                   "AIRFLOW__LOGGING__LOGGING_CONFIG_CLASS": "edgeexec.logging_config.LOGGING_CONFIG"}))
    try:
        stack.start()
        stack.wait_for_dags(["common_work", "team_a_work", "team_b_work"])
        yield Teams(stack, server.url)
    except Exception:
        stack.print_tails()
        raise
    finally:
        stack.stop()
        server.stop()


def _jobs(teams: Teams, team: str) -> list[dict[str, str]]:
    client, keys = teams.store(team)
    return [client.hgetall(k) for k in client.scan_iter(match=keys.job("*"), count=1000)]


def test_each_teams_tasks_run_only_on_its_own_agents(teams: Teams) -> None:
    """Every team's agents serve 'default'; each DAG's tasks ran on its team's agent, and its jobs
    are in its team's keyspace only (team_b's in its own Redis database)."""
    runs = {team: teams.stack.trigger(f"{team or 'common'}_work") for team in AGENTS}
    for team, run_id in runs.items():
        assert teams.stack.wait_for_run(f"{team or 'common'}_work", run_id, 240) == "success", team
    for team, agent in AGENTS.items():
        jobs = [j for j in _jobs(teams, team) if j.get("kind") == "task"]
        dags = {j["label"].split(".")[0] for j in jobs}
        assert dags == {f"{team or 'common'}_work"}, (team, dags)
        assert {j["agent"] for j in jobs} == {agent} and len(jobs) >= 3, (team, jobs)
    assert not teams.db1.keys(f"{DEFAULT_PREFIX}:team:team_a:*") and not teams.db0.keys(f"{DEFAULT_PREFIX}:team:team_b:*")
    # Airflow's UI asks for a task's log without saying its team: it is found in the team's fleet
    log = teams.stack.api("GET", f"/dags/team_b_work/dagRuns/{runs['team_b']}/taskInstances/where/logs/1"
                                 "?map_index=0&full_content=true")
    assert "log streamed by agent b-1" in orjson.dumps(log).decode()


async def _hello(url: str, token: str, name: str, team: str) -> p.Frame | int:
    """What a gateway answers an agent's hello: its first frame, or the HTTP refusal's status."""
    try:
        async with connect(url, additional_headers={"Authorization": f"Bearer {token}"}, open_timeout=20) as ws:
            await ws.send(p.encode(p.Hello(name=name, instance=uuid.uuid4().hex, queues=("default",), concurrency=1,
                                           team=team)).decode())
            try:
                frame = p.decode(await asyncio.wait_for(ws.recv(), 10))
                return frame.code if isinstance(frame, p.Error) else frame
            except ConnectionClosed as exc:
                assert exc.rcvd is not None
                return exc.rcvd.code
    except InvalidStatus as exc:
        return int(exc.response.status_code)


def _token(teams: Teams, team: str, *args: str) -> str:
    out = teams.cli("edgeexec", "token", "create", "--team", team, *args)
    assert out.returncode == 0, out.stderr
    return next(w for w in out.stdout.split() if w.startswith("eex_"))


async def test_a_teams_token_cannot_register_an_agent_of_another_team(teams: Teams) -> None:
    """A team_a token is unknown to team_b's gateway; an agent started for team_b is refused by
    team_a's gateway whatever its token; with its own team it is welcome."""
    token = _token(teams, "team_a", "--agent", "intruder", "--queues", "default")
    assert await _hello(teams.stack.team_gateway_url("team_b"), token, "intruder", "team_b") == 403
    assert await _hello(teams.stack.team_gateway_url("team_a"), token, "intruder", "team_b") == p.CloseCode.FORBIDDEN
    assert isinstance(await _hello(teams.stack.team_gateway_url("team_a"), token, "intruder", "team_a"), p.Welcome)
    assert await _hello(teams.stack.team_gateway_url(""), token, "intruder", "") == 403


def _page(teams: Teams, user: str, team: str | None = None) -> str:
    url = teams.stack.api_url.replace("http://", "ws://") + "/edgeexec/ui/ws"
    return url + (f"?team={team}" if team is not None else "")


async def _session(teams: Teams, user: str, team: str | None = None) -> tuple[Any, dict[str, Any]]:
    ws = await connect(_page(teams, user, team),
                       additional_headers={"Authorization": f"Bearer {teams.stack.login(user)}"}, open_timeout=30)
    await ws.send(orjson.dumps({"type": "subscribe"}).decode())
    return ws, orjson.loads(await ws.recv())


async def _command(ws: Any, agent: str, action: str) -> dict[str, Any]:
    await ws.send(orjson.dumps(p.control_command(agent, action, 1)).decode())
    while (msg := orjson.loads(await ws.recv()))["type"] != "result":
        pass
    return dict(msg)


async def test_each_teams_operator_sees_and_commands_only_its_own_agents(teams: Teams) -> None:
    """alice (team_a) watches team_a's fleet by default, may not open team_b's, and her commands
    reach team_a's agents only; the admin may switch between every fleet."""
    ws, snap = await _session(teams, "alice")
    try:
        assert snap["operator"]["team"] == "team_a" and "team_b" not in snap["operator"]["teams"]
        names = {a["name"] for a in snap["agents"]}
        assert "a-1" in names and names.isdisjoint({"b-1", "main"}), names
        refused = await _command(ws, "b-1", "maintenance_on")
        assert refused["ok"] is False and "no agent named 'b-1'" in refused["message"]
        assert (await _command(ws, "a-1", "maintenance_on"))["ok"] is True
        wait_for(lambda: teams.db0.hget(Keys(keyspace(DEFAULT_PREFIX, "team_a")).agent("a-1"), "state")
                 == "maintenance mode", 30, "a-1 in maintenance")
        assert (await _command(ws, "a-1", "maintenance_off"))["ok"] is True
    finally:
        await ws.close()
    client, keys = teams.store("team_b")
    assert client.hget(keys.agent("b-1"), "state") in ("idle", "running")
    with pytest.raises(InvalidStatus) as refused_b:
        await _session(teams, "alice", "team_b")
    assert refused_b.value.response.status_code == 403
    for team, agent in AGENTS.items():
        ws, snap = await _session(teams, "admin", team)
        await ws.close()
        names = {a["name"] for a in snap["agents"]}
        assert agent in names and names.isdisjoint(set(AGENTS.values()) - {agent}), (team, names)
        assert set(snap["operator"]["teams"]) == set(AGENTS)


def test_the_airflow_cli_and_metrics_are_scoped_by_team(teams: Teams) -> None:
    """`airflow edgeexec --team` uses the team's overrides (gateway, admin token) and lists only
    its agents; a team's admin token is refused by another team's gateway; /metrics counts the
    gateway's team only."""
    admin_a = _token(teams, "team_a", "--admin")
    env = {"AIRFLOW__TEAM_A___EDGEEXEC__URL": teams.stack.team_gateway_url("team_a"),
           "AIRFLOW__TEAM_A___EDGEEXEC__ADMIN_TOKEN": admin_a}
    out = teams.cli("airflow", "edgeexec", "list-agents", "--team", "team_a", "-o", "json", **env)
    assert out.returncode == 0, out.stderr
    names = {a["name"] for a in orjson.loads(out.stdout)}
    assert "a-1" in names and names.isdisjoint({"b-1", "main"}), names
    wrong = teams.cli("airflow", "edgeexec", "list-agents", "--team", "team_a", "-o", "json",
                      AIRFLOW__TEAM_A___EDGEEXEC__URL=teams.stack.team_gateway_url("team_b"),
                      AIRFLOW__TEAM_A___EDGEEXEC__ADMIN_TOKEN=admin_a)
    assert wrong.returncode != 0 and "403" in wrong.stderr + wrong.stdout
    # no override for the team: the deployment's gateway, which serves no team, is not commanded
    unset = teams.cli("airflow", "edgeexec", "drain", "a-1", "--team", "team_a",
                      AIRFLOW__EDGEEXEC__ADMIN_TOKEN=teams.stack.secret)
    assert unset.returncode == 2 and "serves no team" in unset.stderr, unset.stderr
    assert teams.db0.hget(Keys(keyspace(DEFAULT_PREFIX, "team_a")).agent("a-1"), "state") in ("idle", "running")
    import urllib.request

    port = teams.stack.team_ports["team_b"]
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as r:
        metrics = r.read().decode()
    assert "edgeexec_agents_connected 1.0" in metrics, [m for m in metrics.splitlines() if "connected" in m]
    assert os.environ.get("AIRFLOW__TEAM_A___EDGEEXEC__URL") is None  # nothing leaked into this process
