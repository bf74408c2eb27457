"""Agent settings: ``AIRFLOW__EDGEEXEC__*`` environment variables, then CLI flags."""

from __future__ import annotations

import socket
from collections.abc import Mapping, MutableMapping
from dataclasses import dataclass, field
from typing import Any

from edgeexec.config.lookup import build, doc, env_lookup
from edgeexec.errors import ConfigError
from edgeexec.protocol import ProtocolError, validate_agent_name, validate_queue_name, validate_team_name

SECTION = "edgeexec"
SECRET_SETTINGS = ("TOKEN", "ADMIN_TOKEN", "SHARED_SECRET", "METRICS_TOKEN")
"""``AIRFLOW__EDGEEXEC__<name>`` variables that hold secrets: never inherited by a task."""


def scrub_secrets(environ: MutableMapping[str, str], *secrets: str) -> list[str]:
    """Remove edgeexec's secrets from ``environ`` (in place), by name and by value; the names removed.

    Tasks inherit the agent's environment, and a task that prints its environment writes it to
    its log, which every log reader sees. A secret copied to another variable is caught by value.
    """
    names = {f"AIRFLOW__{SECTION.upper()}__{n}" for n in SECRET_SETTINGS}
    values = {s for s in secrets if s}
    gone = [k for k, v in environ.items() if k in names or (values and v in values)]
    for k in gone:
        del environ[k]
    return gone


@dataclass(frozen=True)
class AgentSettings:
    url: str = field(default="ws://127.0.0.1:8765/ws/agent", metadata=doc("Gateway agent endpoint (ws:// or wss://)."))
    name: str = field(default_factory=socket.gethostname, metadata=doc("Agent name; unique in the fleet."))
    team: str = field(default="", metadata=doc(
        "Airflow team ([core] multi_team) the agent works for; its gateway must serve that team. Empty = none."))
    queues: tuple[str, ...] = field(default=("default",), metadata=doc("Airflow queues this agent serves."))
    concurrency: int = field(default=8, metadata=doc("Slots: how many pool slots of work run at once."))
    token: str = field(default="", metadata=doc("Secret sent as `Authorization: Bearer ...`."))
    execution_api_url: str = field(
        default="", metadata=doc("Airflow Execution API URL; empty = Airflow's [core] execution_api_server_url.")
    )
    drain_timeout: float = field(default=0.0, metadata=doc("Seconds a drain waits for jobs; 0 = forever."))
    kill_grace: float = field(default=30.0, metadata=doc("Seconds between SIGTERM and SIGKILL of a job."))
    max_backoff: float = field(default=30.0, metadata=doc("Upper bound of the reconnect delay, seconds."))
    ca_file: str = field(default="", metadata=doc("CA bundle to verify a wss:// gateway."))
    log_folder: str = field(
        default="", metadata=doc("Where task logs are written; empty = Airflow's [logging] base_log_folder.")
    )
    log_interval: float = field(default=1.0, metadata=doc("Seconds between log chunks streamed to the gateway."))
    journal: str = field(
        default="", metadata=doc("File the agent appends a JSON line to per job start and exit; empty = none.")
    )

    def __post_init__(self) -> None:
        try:
            validate_agent_name(self.name)
            validate_team_name(self.team)
            for q in self.queues:
                validate_queue_name(q)
        except ProtocolError as exc:
            raise ConfigError(str(exc)) from None
        if not self.queues:
            raise ConfigError("the agent serves no queue: pass -q/--queues a,b")
        if not 1 <= self.concurrency <= 4096:
            raise ConfigError(f"-c/--concurrency {self.concurrency} is out of range 1..4096")
        if not self.token:
            raise ConfigError("no token: pass --token or set AIRFLOW__EDGEEXEC__TOKEN (the gateway's secret)")

    @classmethod
    def load(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> AgentSettings:
        return build(cls, SECTION, env_lookup(SECTION, environ), overrides)
