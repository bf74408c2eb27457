"""A whole edgeexec deployment on one machine: Redis, Airflow 3, a gateway and agents.

``airflow standalone`` forces LocalExecutor, so edgeexec orchestrates the processes itself. The
same class backs ``edgeexec standalone``, ``edgeexec demo`` and the end-to-end test suite.
"""

from __future__ import annotations

import logging
import os
import secrets
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from edgeexec.localstack.processes import BIN, Proc, RedisServer, free_port, http_ok, port_open, wait_for

log = logging.getLogger(__name__)
API_START_TIMEOUT = 180.0


@dataclass(frozen=True)
class AgentSpec:
    name: str
    queues: tuple[str, ...] = ("default",)
    concurrency: int = 8
    team: str = ""
    """With StackConfig.teams: the team it works for; it connects to that team's gateway."""

    @classmethod
    def parse(cls, text: str) -> AgentSpec:
        """``NAME[:QUEUES[:CONCURRENCY]]``, e.g. ``gpu-1:gpu,default:2``."""
        from edgeexec.errors import ConfigError
        from edgeexec.protocol import ProtocolError, validate_agent_name, validate_queue_name

        name, _, rest = text.partition(":")
        queues_text, _, slots = rest.partition(":")
        queues = tuple(q.strip() for q in queues_text.split(",") if q.strip()) or ("default",)
        try:
            validate_agent_name(name)
            for q in queues:
                validate_queue_name(q)
            concurrency = int(slots) if slots else 8
        except (ProtocolError, ValueError) as exc:
            raise ConfigError(f"--agent {text!r}: {exc}; use NAME[:QUEUES[:CONCURRENCY]], e.g. site-2:other:4") from None
        if not 1 <= concurrency <= 4096:
            raise ConfigError(f"--agent {text!r}: concurrency {concurrency} is out of range 1..4096")
        return cls(name, queues, concurrency)


@dataclass(frozen=True)
class StackUser:
    """An Airflow user of the stack's SimpleAuthManager (role: viewer, user, op or admin); its
    password is generated once per stack home (``LocalStack.password``)."""

    name: str
    role: str
    teams: tuple[str, ...] = ()

    def entry(self) -> str:
        """As ``[core] simple_auth_manager_users`` lists it."""
        return f"{self.name}:{self.role}" + (f":{'|'.join(self.teams)}" if self.teams else "")


@dataclass
class StackConfig:
    home: Path
    dags_folder: Path
    sql_alchemy_conn: str = ""
    redis_url: str = ""
    agents: tuple[AgentSpec, ...] = (AgentSpec("agent-1"),)
    heartbeat_interval: float = 10.0
    extra_env: Mapping[str, str] = field(default_factory=dict)
    teams: Mapping[str, Path] = field(default_factory=dict)
    """Airflow teams ([core] multi_team), each with its DAG folder (a bundle of the team) and a
    gateway of its own; the team-less DAGs stay in ``dags_folder``."""
    users: tuple[StackUser, ...] = ()
    """Airflow users who sign in; none: everybody is an admin without signing in (a local stack)."""
    inherit_airflow_env: bool = False
    """Keep the caller's AIRFLOW_* variables (connections, variables, tuning) where the stack does not
    have to own them, as ``airflow standalone`` does; tests start from a clean environment instead."""


COMPONENTS = ("api-server", "scheduler", "dag-processor", "triggerer")
"""The Airflow processes the stack runs: what ``airflow standalone`` runs."""
OWNED = ("AIRFLOW_HOME", "AIRFLOW_CONFIG", "AIRFLOW__API__", "AIRFLOW__API_AUTH__", "AIRFLOW__DATABASE__",
         "AIRFLOW__EDGEEXEC__", "AIRFLOW__EXECUTION_API__", "AIRFLOW__CORE__EXECUTOR", "AIRFLOW__CORE__AUTH_MANAGER",
         "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER", "AIRFLOW__CORE__EXECUTION_API_SERVER_URL", "AIRFLOW__CORE__DAGS_FOLDER",
         "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION", "AIRFLOW__LOGGING__BASE_LOG_FOLDER")
"""Variable names (prefixes) the stack owns whatever the caller has: its processes must find each
other (ports, URLs, secrets, its own database and Redis), its users are its own (by default: no login), and
a caller's production airflow.cfg, TLS or auth settings must not reach a local SQLite stack."""


class LocalStack:
    def __init__(self, config: StackConfig) -> None:
        self.cfg = config
        self.home = config.home.resolve()
        self.api_port = free_port()
        self.gateway_port = free_port()
        self.team_ports = {team: free_port() for team in config.teams}
        self.secret = secrets.token_urlsafe(24)
        self.redis: RedisServer | None = None
        self.procs: dict[str, Proc] = {}
        self.redis_url = config.redis_url
        self._tokens: dict[str, str] = {}

    # ------------------------------------------------------------------ environment

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    @property
    def gateway_url(self) -> str:
        return f"ws://127.0.0.1:{self.gateway_port}/ws/agent"

    def team_gateway_url(self, team: str) -> str:
        return f"ws://127.0.0.1:{self.team_ports[team]}/ws/agent" if team else self.gateway_url

    @property
    def sql_alchemy_conn(self) -> str:
        return self.cfg.sql_alchemy_conn or f"sqlite:///{self.home / 'airflow.db'}"

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
        user = {k: v for k, v in os.environ.items() if self.cfg.inherit_airflow_env and k.startswith("AIRFLOW")
                and not k.startswith(OWNED)}
        env.update({
            "AIRFLOW_HOME": str(self.home / "airflow"),
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": self.sql_alchemy_conn,
            "AIRFLOW__CORE__EXECUTOR": "edgeexec.EdgeExecutor",
            "AIRFLOW__API_AUTH__JWT_SECRET": self._persistent_secret("jwt_secret"),
            "AIRFLOW__API__SECRET_KEY": self._persistent_secret("api_secret"),
            "AIRFLOW__API__HOST": "127.0.0.1",
            "AIRFLOW__API__PORT": str(self.api_port),
            "AIRFLOW__API__BASE_URL": self.api_url,
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{self.api_url}/execution/",
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__DAGS_FOLDER": str(self.cfg.dags_folder.resolve()),
            "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": str(not self.cfg.users),
            "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(self.home / "logs"),
            "AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK": "False",
            "AIRFLOW__EDGEEXEC__REDIS_URL": self.redis_url,
            "AIRFLOW__EDGEEXEC__SHARED_SECRET": self.secret,
            "AIRFLOW__EDGEEXEC__ALLOW_SHARED_SECRET": "true",  # a local development stack
            "AIRFLOW__EDGEEXEC__TOKEN": self.secret,
            "AIRFLOW__EDGEEXEC__URL": self.gateway_url,
            "AIRFLOW__EDGEEXEC__HEARTBEAT_INTERVAL": str(self.cfg.heartbeat_interval),
            "AIRFLOW__EDGEEXEC__EXECUTION_API_URL": f"{self.api_url}/execution/",
            "PYTHONUNBUFFERED": "1",
        })
        if self.cfg.teams:
            env.update(self._team_env())
        if self.cfg.users:
            env["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS"] = ",".join(u.entry() for u in self.cfg.users)
            env["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE"] = str(self.home / "passwords.json")
        env.update(user)  # empty unless inherit_airflow_env: the caller's settings win where they may
        env.update(self.cfg.extra_env)
        return env

    def _team_env(self) -> dict[str, str]:
        """Multi-team: an EdgeExecutor per team, and each team's DAG folder as its bundle."""
        local = "airflow.dag_processing.bundles.local.LocalDagBundle"
        bundles = [{"name": "dags-folder", "classpath": local, "kwargs": {"path": str(self.cfg.dags_folder.resolve())}}]
        bundles += [{"name": f"team-{team}", "classpath": local, "kwargs": {"path": str(path.resolve())},
                     "team_name": team} for team, path in self.cfg.teams.items()]
        return {
            "AIRFLOW__CORE__MULTI_TEAM": "True",
            "AIRFLOW__CORE__EXECUTOR": ";".join(["edgeexec.EdgeExecutor",
                                                 *(f"{t}=edgeexec.EdgeExecutor" for t in self.cfg.teams)]),
            "AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_CONFIG_LIST": orjson.dumps(bundles).decode(),
        }

    def password(self, user: str) -> str:
        return self._persistent_secret(f"password-{user}")

    def _write_passwords(self) -> None:
        if self.cfg.users:
            path = self.home / "passwords.json"
            path.write_text(orjson.dumps({u.name: self.password(u.name) for u in self.cfg.users}).decode())
            path.chmod(0o600)

    def _persistent_secret(self, name: str) -> str:
        """Secrets the api-server and scheduler must share; kept so a restarted stack keeps working."""
        path = self.home / f".{name}"
        if not path.exists():
            path.write_text(secrets.token_urlsafe(32))
            path.chmod(0o600)
        return path.read_text().strip()

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> LocalStack:
        self.home.mkdir(parents=True, exist_ok=True)
        (self.home / "logs").mkdir(exist_ok=True)
        if not self.redis_url:
            self.redis = RedisServer(self.home / "redis").start()
            self.redis_url = self.redis.url
        self._write_passwords()
        self._airflow("db", "migrate")
        for team in self.cfg.teams:
            self._airflow("teams", "create", team)
        for component in COMPONENTS:
            self.start_airflow(component)
        self.start_gateway()
        for team, port in self.team_ports.items():
            self.start_gateway(f"gateway-{team}", port, team=team)
        for spec in self.cfg.agents:
            self.start_agent(spec)
        wait_for(lambda: http_ok(f"{self.api_url}/api/v2/monitor/health"), API_START_TIMEOUT,
                 f"Airflow api-server on port {self.api_port} (log: {self.home / 'api-server.log'})", 0.5)
        return self

    def _airflow(self, *args: str) -> None:
        out = subprocess.run([str(BIN / "airflow"), *args], env=self.env(), capture_output=True, text=True)
        if out.returncode != 0:
            raise RuntimeError(f"airflow {' '.join(args)} failed:\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}")

    def start_airflow(self, component: str) -> Proc:
        argv = [str(BIN / "airflow"), component]
        if component in ("scheduler", "triggerer"):
            argv.append("--skip-serve-logs")  # no log server on 0.0.0.0: logs come through the gateway
        return self._spawn(component, argv)

    def start_gateway(self, name: str = "gateway", port: int | None = None, team: str = "") -> Proc:
        """The stack's gateway, or (with ``name`` and ``port``) another one on the same Redis;
        ``team``: the gateway of that team's fleet."""
        port = port or self.gateway_port
        team_args = ["--team", team] if team else []
        proc = self._spawn(name, [str(BIN / "edgeexec"), "gateway", "--port", str(port), *team_args])
        wait_for(lambda: port_open(port), 60, f"{name} on port {port}")
        return proc

    def agent_env(self) -> dict[str, str]:
        """What a remote agent host has: no JWT signing secret and no metadata database."""
        env = self.env()
        for key in ("AIRFLOW__API_AUTH__JWT_SECRET", "AIRFLOW__API__SECRET_KEY", "AIRFLOW__EDGEEXEC__SHARED_SECRET"):
            env.pop(key, None)
        env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] = "sqlite:////nonexistent/agents-have-no-database.db"
        # their own disk, as on a remote host: Airflow sees their logs only as streamed through the gateway
        env["AIRFLOW__LOGGING__BASE_LOG_FOLDER"] = str(self.home / "agent-logs")
        return env

    def start_agent(self, spec: AgentSpec, *extra: str) -> Proc:
        argv = [str(BIN / "agent"), "start", "-q", ",".join(spec.queues), "-c", str(spec.concurrency),
                "--name", spec.name, *extra]
        env = self.agent_env()
        if spec.team:
            env.update({"AIRFLOW__EDGEEXEC__TEAM": spec.team, "AIRFLOW__EDGEEXEC__URL": self.team_gateway_url(spec.team)})
        return self._spawn(f"agent-{spec.name}", argv, env)

    def _spawn(self, name: str, argv: list[str], env: dict[str, str] | None = None) -> Proc:
        old = self.procs.get(name)
        if old is not None:
            old.stop()
        proc = Proc(argv, env=env or self.env(), log=self.home / f"{name}.log", cwd=self.home)
        self.procs[name] = proc
        return proc

    def print_tails(self, lines: int = 30) -> None:
        """The end of every process's log, for a start-up that failed."""
        for name, proc in self.procs.items():
            print(f"--- {name} ---\n{proc.tail(lines)}")

    def stop(self) -> None:
        for name in sorted(self.procs, key=lambda n: (not n.startswith("agent"), n)):
            self.procs[name].stop()
        self.procs.clear()
        if self.redis:
            self.redis.stop()

    # ------------------------------------------------------------------ Airflow REST API

    def api(self, method: str, path: str, body: Any = None, headers: Mapping[str, str] | None = None) -> Any:
        """A REST call; with users, signed in as the first admin among them."""
        import urllib.request

        data = orjson.dumps(body) if body is not None else None
        head = {"Content-Type": "application/json", **(headers or {})}
        admin = next((u.name for u in self.cfg.users if u.role == "admin"), None)
        if admin is not None:
            head.setdefault("Authorization", f"Bearer {self.login(admin)}")
        req = urllib.request.Request(f"{self.api_url}/api/v2{path}", data=data, method=method, headers=head)
        with urllib.request.urlopen(req, timeout=30) as resp:
            return orjson.loads(resp.read() or b"null")

    def login(self, user: str, *, fresh: bool = False) -> str:
        """An Airflow API token for one of the stack's users (cached for the stack's life unless
        ``fresh``: a new token, e.g. one to log out with)."""
        import urllib.request

        if fresh or user not in self._tokens:
            req = urllib.request.Request(f"{self.api_url}/auth/token", method="POST",
                                         data=orjson.dumps({"username": user, "password": self.password(user)}),
                                         headers={"Content-Type": "application/json"})
            with urllib.request.urlopen(req, timeout=30) as resp:
                self._tokens[user] = str(orjson.loads(resp.read())["access_token"])
        return self._tokens[user]

    def wait_for_dags(self, dag_ids: list[str], timeout: float = 180) -> None:
        def parsed() -> bool:
            return all(self._dag_exists(d) for d in dag_ids)

        wait_for(parsed, timeout, f"DAGs {', '.join(dag_ids)} to be parsed", 1.0)

    def _dag_exists(self, dag_id: str) -> bool:
        try:
            self.api("GET", f"/dags/{dag_id}")
            return True
        except Exception:  # noqa: BLE001 - 404 until the dag-processor has parsed it
            return False

    def trigger(self, dag_id: str, conf: Mapping[str, Any] | None = None) -> str:
        run = self.api("POST", f"/dags/{dag_id}/dagRuns", {"logical_date": None, "conf": dict(conf or {})})
        return str(run["dag_run_id"])

    def run_state(self, dag_id: str, run_id: str) -> str:
        return str(self.api("GET", f"/dags/{dag_id}/dagRuns/{run_id}")["state"])

    def wait_for_run(self, dag_id: str, run_id: str, timeout: float = 300) -> str:
        wait_for(lambda: self.run_state(dag_id, run_id) in ("success", "failed"), timeout,
                 f"run {run_id} of {dag_id} to finish", 1.0)
        return self.run_state(dag_id, run_id)

    def task_log(self, dag_id: str, run_id: str, task_id: str, try_number: int = 1) -> str:
        """The task's log as Airflow's REST API serves it (JSON text of the structured lines)."""
        body = self.api("GET", f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/logs/{try_number}"
                               "?full_content=true")
        return orjson.dumps(body).decode()

    def task_instances(self, dag_id: str, run_id: str) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = self.api("GET", f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances")[
            "task_instances"]
        return out
