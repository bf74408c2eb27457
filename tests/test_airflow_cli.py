"""edgeexec as an Airflow provider: `airflow providers list`, `airflow config`, and every
`airflow edgeexec` command against a real gateway and real agent processes."""

from __future__ import annotations

import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml

from edgeexec.localstack.processes import BIN, wait_for
from edgeexec.tokens import store as token_store
from tests.test_operate import Fleet


@pytest.fixture(scope="module")
def fleet(redis_server: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    f = Fleet(Path(tmp_path_factory.mktemp("afleet")), redis_server.url)
    yield f
    f.stop()


def airflow(fleet: Fleet, *args: str, token: str | None = None, **env: str) -> subprocess.CompletedProcess[str]:
    """The real `airflow` CLI, configured as a scheduler host is: [edgeexec] from the environment."""
    full = fleet.env(**{"AIRFLOW__EDGEEXEC__ADMIN_TOKEN": fleet.admin if token is None else token,
                        "AIRFLOW__EDGEEXEC__REDIS_URL": fleet.redis_url,
                        "AIRFLOW__EDGEEXEC__REDIS_PREFIX": fleet.keys.prefix, **env})
    return subprocess.run([str(BIN / "airflow"), *args], env=full, capture_output=True, text=True, timeout=120)


def ok(out: subprocess.CompletedProcess[str]) -> str:
    assert out.returncode == 0, f"exit {out.returncode}\n{out.stdout}\n{out.stderr}"
    return out.stdout


def listed(fleet: Fleet, *filters: str) -> dict[str, dict[str, Any]]:
    rows = orjson.loads(ok(airflow(fleet, "edgeexec", "list-agents", "-o", "json", *filters)))
    return {r["name"]: r for r in rows}


def test_the_provider_is_listed_with_its_options(fleet: Fleet) -> None:
    """`airflow providers list` shows edgeexec; its [edgeexec] options have defaults and descriptions,
    an environment variable overrides one, and secrets stay hidden."""
    assert "edgeexec" in ok(airflow(fleet, "providers", "list"))
    config = ok(airflow(fleet, "config", "list", "--section", "edgeexec", "--include-descriptions"))
    assert "# Seconds between agent heartbeats" in config and "heartbeat_interval" in config
    assert ok(airflow(fleet, "config", "get-value", "edgeexec", "job_ttl")).strip() == "86400"
    assert ok(airflow(fleet, "config", "get-value", "edgeexec", "job_ttl", AIRFLOW__EDGEEXEC__JOB_TTL="600")) \
        .strip() == "600"
    shown = ok(airflow(fleet, "config", "list", "--section", "edgeexec", "--show-values", "--hide-sensitive",
                       AIRFLOW__EDGEEXEC__REDIS_URL="redis://:hunter2@r:6379/0"))
    assert "redis_prefix = " in shown and fleet.admin not in shown, "the admin token is sensitive"
    assert "hunter2" not in shown, "a Redis URL can carry a password"
    assert "edgeexec" in ok(airflow(fleet, "plugins")), "the plugin loads with Airflow's default provider discovery"


def test_list_agents_filters_and_formats(fleet: Fleet) -> None:
    """Filters by state, queue and name pattern; json, yaml and table output."""
    a, b = f"la-{uuid.uuid4().hex[:6]}", f"lb-{uuid.uuid4().hex[:6]}"
    fleet.start_agent(a, "q1")
    fleet.start_agent(b, "q2")
    both = listed(fleet, "--name", "l[ab]-*")
    assert {a, b} <= set(both) and both[a]["queues"] == ["q1"] and both[a]["state"] == "idle"
    assert both[a]["connected"] is True and both[a]["concurrency"] == 2
    assert a in listed(fleet, "--queue", "q1") and b not in listed(fleet, "--queue", "q1")
    assert not {a, b} & set(listed(fleet, "--state", "maintenance mode", "offline"))
    rows = yaml.safe_load(ok(airflow(fleet, "edgeexec", "list-agents", "-o", "yaml", "--name", a)))
    assert [r["name"] for r in rows] == [a]
    table = ok(airflow(fleet, "edgeexec", "list-agents", "--name", b))
    assert b in table and "q2" in table and "0/2" in table
    for name in (a, b):
        ok(airflow(fleet, "edgeexec", "shutdown", name, "--wait"))


def test_maintenance_on_comment_off_reach_the_agent(fleet: Fleet) -> None:
    name = f"mm-{uuid.uuid4().hex[:6]}"
    fleet.start_agent(name)
    refused = airflow(fleet, "edgeexec", "maintenance", "comment", name, "-c", "early")
    assert refused.returncode == 1 and "not in maintenance" in refused.stderr
    assert "maintenance mode" in ok(airflow(fleet, "edgeexec", "maintenance", "on", name, "-c", "disk swap", "--wait"))
    assert fleet.record(name)["accepting"] == "0"
    ok(airflow(fleet, "edgeexec", "maintenance", "comment", name, "-c", "disk swap, day 2"))
    wait_for(lambda: listed(fleet, "--name", name)[name]["comments"] == "disk swap, day 2", 30, "the new comment")
    ok(airflow(fleet, "edgeexec", "maintenance", "off", name, "--wait"))
    assert listed(fleet, "--name", name)[name]["state"] == "idle" and fleet.record(name)["accepting"] == "1"
    ok(airflow(fleet, "edgeexec", "drain", name, "--wait"))
    wait_for(lambda: fleet.agents[name].popen.poll() is not None, 30, "the drained agent to exit")


def test_queues_and_concurrency_change_within_the_token(fleet: Fleet) -> None:
    """add-queues / remove-queues / set-concurrency re-register the agent; a queue its token does not
    allow is refused with the reason and a non-zero exit."""
    name = f"qc-{uuid.uuid4().hex[:6]}"
    fleet.start_agent(name, "q1")
    ok(airflow(fleet, "edgeexec", "add-queues", name, "q3"))  # its token allows q1 and q3
    wait_for(lambda: listed(fleet, "--name", name)[name]["queues"] == ["q1", "q3"], 30, "the added queue")
    ok(airflow(fleet, "edgeexec", "remove-queues", name, "q1"))
    wait_for(lambda: listed(fleet, "--name", name)[name]["queues"] == ["q3"], 30, "the removed queue")
    beyond = airflow(fleet, "edgeexec", "add-queues", name, "q2")
    assert beyond.returncode == 1 and "not allowed by this agent's token" in beyond.stderr
    empty = airflow(fleet, "edgeexec", "remove-queues", name, "q3")
    assert empty.returncode == 2 and "no queue" in empty.stderr
    ok(airflow(fleet, "edgeexec", "set-concurrency", name, "5"))
    wait_for(lambda: listed(fleet, "--name", name)[name]["concurrency"] == 5, 30, "the new concurrency")
    ok(airflow(fleet, "edgeexec", "shutdown", name, "--wait"))


def test_shutdown_all_stops_every_connected_agent_and_skips_offline_ones(fleet: Fleet) -> None:
    gone = f"so-{uuid.uuid4().hex[:6]}"
    fleet.start_agent(gone)
    ok(airflow(fleet, "edgeexec", "shutdown", gone, "--wait"))
    names = [f"sa-{uuid.uuid4().hex[:6]}" for _ in range(2)]
    for n in names:
        fleet.start_agent(n)
    out = ok(airflow(fleet, "edgeexec", "shutdown-all", "--yes"))
    assert f"{gone} is offline: skipped" in out and all(f"shutdown sent to {n}" in out for n in names), out
    for n in names:
        wait_for(lambda n=n: fleet.agents[n].popen.poll() is not None, 60, f"agent {n} to exit")  # type: ignore[misc]
    single = airflow(fleet, "edgeexec", "shutdown", gone)
    assert single.returncode == 1 and "offline" in single.stderr, "one named offline agent is a failure"


def test_remove_agent_forgets_only_an_offline_agent(fleet: Fleet) -> None:
    name = f"rm-{uuid.uuid4().hex[:6]}"
    fleet.start_agent(name)
    live = airflow(fleet, "edgeexec", "remove-agent", name)
    assert live.returncode == 1 and "is connected" in live.stderr
    ok(airflow(fleet, "edgeexec", "shutdown", name, "--wait"))
    assert name in listed(fleet, "--name", name)
    assert f"removed agent {name}" in ok(airflow(fleet, "edgeexec", "remove-agent", name))
    assert name not in listed(fleet, "--name", name) and not fleet.record(name)
    again = airflow(fleet, "edgeexec", "remove-agent", name)
    assert again.returncode == 1 and f"no agent named {name!r}" in again.stderr
    every = airflow(fleet, "edgeexec", "remove-agent", "*")
    assert every.returncode == 2 and "agent name" in every.stderr


def test_refusals_exit_non_zero_and_say_why(fleet: Fleet) -> None:
    """An unknown agent, no admin token, and an agent's token instead of an admin token."""
    unknown = airflow(fleet, "edgeexec", "maintenance", "on", "no-such-agent")
    assert unknown.returncode == 1 and "no agent named 'no-such-agent'" in unknown.stderr
    missing = airflow(fleet, "edgeexec", "list-agents", token="")
    assert missing.returncode == 2 and "admin token" in missing.stderr
    agent_token, _ = token_store.create(fleet.client, fleet.keys, agent="x", queues=("q1",), admin=False, ttl_s=None)
    wrong = airflow(fleet, "edgeexec", "list-agents", token=agent_token)
    assert wrong.returncode == 2 and "403" in wrong.stderr


def test_tokens_create_list_revoke(fleet: Fleet) -> None:
    created = airflow(fleet, "edgeexec", "token", "create", "--agent", "tk-site", "-q", "q1", "--expires", "30d")
    token = ok(created).strip()
    assert token.startswith("eex_") and "tk-site" in created.stderr
    rows = orjson.loads(ok(airflow(fleet, "edgeexec", "token", "list", "-o", "json")))
    mine = [r for r in rows if r["agent"] == "tk-site"]
    secret = token.split("_", 2)[2]  # eex_<id>_<secret>; the id is listed, the secret never
    assert len(mine) == 1 and mine[0]["queues"] == ["q1"] and secret not in str(rows)
    bad = airflow(fleet, "edgeexec", "token", "create", "--agent", "bad name", "-q", "q1")
    assert bad.returncode == 2 and "agent name" in bad.stderr
    ok(airflow(fleet, "edgeexec", "token", "revoke", mine[0]["id"]))
    assert airflow(fleet, "edgeexec", "token", "revoke", mine[0]["id"]).returncode == 1


def test_provider_info_is_valid_and_one_option_means_one_thing() -> None:
    """get_provider_info() passes Airflow's own schema; an option read by several components has one
    default, and that default parses back to the value the code uses."""
    import dataclasses
    import json
    from importlib import resources

    import jsonschema

    from edgeexec.airflow import provider
    from edgeexec.config.lookup import build

    schema = json.loads((resources.files("airflow") / "provider_info.schema.json").read_text())
    info = provider.get_provider_info()
    jsonschema.validate(info, schema)
    options = info["config"]["edgeexec"]["options"]
    for cls in provider.settings_classes():
        for f in dataclasses.fields(cls):
            assert options[f.name]["default"] == provider._default(f), f"{cls.__name__}.{f.name}"
        defaults = {f.name: options[f.name]["default"] for f in dataclasses.fields(cls)}
        overrides = {"token": "t"} if cls.__name__ == "AgentSettings" else {}
        parsed = build(cls, "edgeexec", lambda n, d=defaults: d[n], overrides)  # type: ignore[misc]
        plain = build(cls, "edgeexec", lambda n: None, overrides)
        skip = {"name", "gateway_id"}  # computed per host / process
        assert {k: v for k, v in vars(parsed).items() if k not in skip} == \
            {k: v for k, v in vars(plain).items() if k not in skip}, cls.__name__
    assert {o for o, v in options.items() if v.get("sensitive")} == set(provider.SENSITIVE)
