"""compose.yaml and the systemd units, checked without Docker or systemd.

compose.yaml is validated against the Compose specification's JSON schema (fetched by `make
install`), every service command is parsed by the real CLI it names, and the gateway and agent
commands, with the environment compose would give them, are started as processes: the agent
must register with the gateway. The units' ExecStart lines, with their example environment
files, are started the same way.
"""

from __future__ import annotations

import configparser
import json
import re
import shlex
import uuid
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
import redis
import yaml

from edgeexec.localstack.processes import BIN, Proc, free_port, http_ok, wait_for

ROOT = Path(__file__).parent.parent
SCHEMA = ROOT / ".venv" / "share" / "compose-spec" / "compose-spec.json"
UNITS = ROOT / "deploy" / "systemd"


def _compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((ROOT / "compose.yaml").read_text())
    return data


def _dotenv(path: Path) -> dict[str, str]:
    pairs = (line.split("=", 1) for line in path.read_text().splitlines() if "=" in line and not line.startswith("#"))
    return {k.strip(): v.strip() for k, v in pairs}


def test_compose_file_matches_the_compose_specification() -> None:
    import jsonschema

    if not SCHEMA.exists():
        pytest.fail(f"{SCHEMA} is missing: run `make install` (scripts/fetch_compose_schema.py)")
    schema = json.loads(SCHEMA.read_text())
    errors = sorted(jsonschema.Draft201909Validator(schema).iter_errors(_compose()), key=str)
    assert not errors, "\n".join(f"{'/'.join(map(str, e.path))}: {e.message}" for e in errors)


def test_compose_has_the_documented_services_with_healthchecks() -> None:
    services = _compose()["services"]
    assert set(services) >= {"redis", "postgres", "airflow-init", "api-server", "scheduler", "dag-processor",
                             "gateway", "agent-default", "agent-remote"}
    assert "--appendonly" in services["redis"]["command"]
    for name in ("redis", "postgres", "api-server", "gateway"):
        assert "healthcheck" in services[name], name
    agents = [s for n, s in services.items() if n.startswith("agent-")]
    assert len({tuple(a["command"][a["command"].index("-q") + 1].split(",")) for a in agents}) == 2
    assert all(a["stop_signal"] == "SIGINT" for a in agents), "agents must drain on `docker compose stop`"


def _parse(argv: list[str]) -> None:
    """Parse argv with the real parser of the command it names (nothing is executed)."""
    if argv[0] == "edgeexec":
        from edgeexec.cli import parser as edgeexec_parser

        edgeexec_parser().parse_args(argv[1:])
    elif argv[0] == "agent":
        from agent.cli import parser as agent_parser

        agent_parser().parse_args(argv[1:])
    elif argv[0] == "airflow":
        from airflow.cli.cli_parser import get_parser

        get_parser().parse_args(argv[1:])
    elif argv[0] != "redis-server":
        raise AssertionError(f"unknown command {argv[0]!r} in compose.yaml")


def test_every_compose_command_parses_with_the_real_cli() -> None:
    for name, service in _compose()["services"].items():
        if "command" in service:
            try:
                _parse(list(service["command"]))
            except SystemExit as exc:
                raise AssertionError(f"service {name}: {service['command']} does not parse") from exc


class Started:
    def __init__(self, tmp: Path, redis_url: str) -> None:
        self.tmp, self.redis_url, self.procs = tmp, redis_url, []  # type: list[Proc]
        self.prefix = "dep" + uuid.uuid4().hex[:6]

    def start(self, argv: list[str], env: Mapping[str, str], name: str) -> Proc:
        base = {"PATH": f"{BIN}:/usr/bin:/bin", "HOME": str(self.tmp), "AIRFLOW_HOME": str(self.tmp / "airflow"),
                "AIRFLOW__EDGEEXEC__REDIS_PREFIX": self.prefix}
        proc = Proc([str(BIN / argv[0]), *argv[1:]], env={**base, **env}, log=self.tmp / f"{name}.log")
        self.procs.append(proc)
        return proc

    def agent_connected(self, name: str) -> bool:
        client = redis.Redis.from_url(self.redis_url, decode_responses=True)
        try:
            return client.hget(f"{self.prefix}:agent:{name}", "connected") == "1"
        finally:
            client.close()


@pytest.fixture()
def started(tmp_path: Path, redis_server: Any) -> Iterator[Started]:
    s = Started(tmp_path, redis_server.url)
    yield s
    for proc in reversed(s.procs):
        proc.stop()
        assert not proc.alive()


def _with_port(argv: list[str], port: int) -> list[str]:
    return [str(port) if i and argv[i - 1] == "--port" else a for i, a in enumerate(argv)]


def test_compose_gateway_and_agent_commands_run_and_connect(started: Started) -> None:
    services, dotenv = _compose()["services"], _dotenv(ROOT / ".env.example")
    port = free_port()

    def env_of(service: dict[str, Any]) -> dict[str, str]:
        env = {k: str(v) for k, v in service.get("environment", {}).items() if k.startswith("AIRFLOW__EDGEEXEC__")}
        env.update({k: v for k, v in dotenv.items() if k.startswith("AIRFLOW__EDGEEXEC__")})
        env["AIRFLOW__EDGEEXEC__REDIS_URL"] = started.redis_url  # the compose host name `redis` is this Redis
        if "AIRFLOW__EDGEEXEC__URL" in env:
            env["AIRFLOW__EDGEEXEC__URL"] = f"ws://127.0.0.1:{port}/ws/agent"
        return env

    gw = started.start(_with_port(list(services["gateway"]["command"]), port), env_of(services["gateway"]), "gateway")
    wait_for(lambda: http_ok(f"http://127.0.0.1:{port}/health"), 60, f"the compose gateway command ({gw.tail()})")
    agent = services["agent-remote"]
    name = agent["command"][agent["command"].index("--name") + 1]
    started.start(list(agent["command"]), env_of(agent), "agent")
    wait_for(lambda: started.agent_connected(name), 120, "the compose agent command to register", 0.5)


def _unit(path: Path) -> configparser.ConfigParser:
    cp = configparser.ConfigParser(strict=False, interpolation=None)
    cp.optionxform = str  # type: ignore[assignment,method-assign]
    cp.read(path)
    return cp


def _exec_start(unit: configparser.ConfigParser, env: Mapping[str, str], tmp: Path) -> list[str]:
    """ExecStart as systemd would run it: ${VAR} from the EnvironmentFile, paths moved to the test."""
    line = re.sub(r"\$\{(\w+)\}", lambda m: env[m.group(1)], unit["Service"]["ExecStart"])
    argv = shlex.split(line.replace("/var/lib/edgeexec", str(tmp)))
    assert argv[0].startswith("/opt/edgeexec/bin/"), argv[0]
    return [Path(argv[0]).name, *argv[1:]]


def test_systemd_units_drain_on_stop_and_restart() -> None:
    agent, gateway = _unit(UNITS / "edgeexec-agent.service"), _unit(UNITS / "edgeexec-gateway.service")
    assert agent["Service"]["KillSignal"] == "SIGINT" and agent["Service"]["KillMode"] == "mixed"
    drain = float(_dotenv(UNITS / "agent.env")["AIRFLOW__EDGEEXEC__DRAIN_TIMEOUT"])
    assert drain < 3600 and agent["Service"]["TimeoutStopSec"] == "1h", "the agent must end its drain before systemd"
    for unit in (agent, gateway):
        assert unit["Service"]["Restart"] == "always"
        assert unit["Install"]["WantedBy"] == "multi-user.target"


def test_systemd_exec_start_lines_run_and_connect(started: Started) -> None:
    port = free_port()
    gw_env = {**_dotenv(UNITS / "gateway.env"), "EDGEEXEC_PORT": str(port), "EDGEEXEC_HOST": "127.0.0.1",
              "AIRFLOW__EDGEEXEC__REDIS_URL": started.redis_url, "AIRFLOW__EDGEEXEC__SHARED_SECRET": "unit-test",
              "AIRFLOW__EDGEEXEC__ALLOW_SHARED_SECRET": "true"}
    argv = _exec_start(_unit(UNITS / "edgeexec-gateway.service"), gw_env, started.tmp)
    started.start(argv, gw_env, "unit-gateway")
    wait_for(lambda: http_ok(f"http://127.0.0.1:{port}/health"), 60, "the gateway unit's ExecStart")
    agent_env = {**_dotenv(UNITS / "agent.env"), "AIRFLOW__EDGEEXEC__URL": f"ws://127.0.0.1:{port}/ws/agent",
                 "AIRFLOW__EDGEEXEC__TOKEN": "unit-test", "AIRFLOW__EDGEEXEC__NAME": "unit-agent",
                 "AIRFLOW_HOME": str(started.tmp / "airflow")}
    argv = _exec_start(_unit(UNITS / "edgeexec-agent.service"), agent_env, started.tmp)
    proc = started.start(argv, agent_env, "unit-agent")
    wait_for(lambda: started.agent_connected("unit-agent"), 120, "the agent unit's ExecStart to register", 0.5)
    proc.send(2)  # systemctl stop: KillSignal=SIGINT drains, and an idle agent exits at once
    wait_for(lambda: not proc.alive(), 60, "the agent to drain and exit")
    assert proc.popen.returncode == 0
