"""Settings of the gateway and of the executor (section ``[edgeexec]``)."""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from edgeexec.config.lookup import Lookup, build, doc, env_lookup
from edgeexec.errors import ConfigError
from edgeexec.store.keys import DEFAULT_PREFIX, Keys, keyspace

SECTION = "edgeexec"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
DEFAULT_HEARTBEAT_INTERVAL = 10.0
DEFAULT_MAX_FRAME = 1 << 20
DEFAULT_JOB_TTL = 86400


def _gateway_id() -> str:
    return f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"


@dataclass(frozen=True)
class StoreSettings:
    """What gateways and schedulers must agree on: where the state is, and when an agent is lost."""

    redis_url: str = field(default=DEFAULT_REDIS_URL, metadata=doc(
        "Redis holding all edgeexec state: redis://, rediss:// or redis+sentinel://h1:26379,h2:26379/service[/db]."))
    redis_prefix: str = field(default=DEFAULT_PREFIX, metadata=doc("Prefix of every Redis key."))
    heartbeat_interval: float = field(
        default=DEFAULT_HEARTBEAT_INTERVAL, metadata=doc("Seconds between agent heartbeats (sent in welcome).")
    )
    liveness_timeout: float = field(
        default=0.0, metadata=doc("Seconds of silence before an agent is lost; 0 = 3 x heartbeat_interval.")
    )
    job_ttl: int = field(default=DEFAULT_JOB_TTL, metadata=doc("Seconds a finished job's record is kept."))
    team: str = field(default="", metadata=doc(
        "Airflow team ([core] multi_team) whose fleet a gateway or the edgeexec token commands serve; empty = the team-less "
        "fleet. Executors take it from [core] executor, `airflow edgeexec` from --team."))

    def __post_init__(self) -> None:
        try:
            keyspace(self.redis_prefix, self.team)
        except ValueError as exc:
            raise ConfigError(f"[edgeexec] team: {exc}") from None
        if self.heartbeat_interval <= 0:
            raise ConfigError("[edgeexec] heartbeat_interval must be > 0 seconds")
        if self.job_ttl < 60:
            raise ConfigError(f"[edgeexec] job_ttl={self.job_ttl} is too short: finished jobs, their logs and the "
                              "streams of stopped schedulers are kept this long; use at least 60 seconds")

    @property
    def liveness(self) -> float:
        return self.liveness_timeout or 3 * self.heartbeat_interval

    def keys(self) -> Keys:
        """The keys of this component's fleet: its team's keyspace."""
        return Keys(keyspace(self.redis_prefix, self.team))


@dataclass(frozen=True)
class GatewaySettings(StoreSettings):
    host: str = field(default="127.0.0.1", metadata=doc("Address the gateway listens on."))
    port: int = field(default=8765, metadata=doc("TCP port the gateway listens on."))
    shared_secret: str = field(
        default="", metadata=doc("Development only: one secret for every agent and admin (see allow_shared_secret).")
    )
    allow_shared_secret: bool = field(
        default=False, metadata=doc("Insecure/dev: accept shared_secret besides per-agent tokens (`edgeexec token create`).")
    )
    hello_timeout: float = field(default=10.0, metadata=doc("Seconds an agent has to send hello."))
    max_frame_bytes: int = field(
        default=DEFAULT_MAX_FRAME, metadata=doc("Largest frame accepted; bigger ones close with 1009.")
    )
    max_agents: int = field(default=20000, metadata=doc("Agent sessions per gateway; more get HTTP 503."))
    ssl_certfile: str = field(default="", metadata=doc("PEM certificate (chain): serve wss:// and https://."))
    ssl_keyfile: str = field(default="", metadata=doc("PEM private key of ssl_certfile."))
    gateway_id: str = field(default_factory=_gateway_id, metadata=doc("Name of this gateway in Redis."))
    mount_gateway: bool = field(
        default=False, metadata=doc("Also serve the gateway inside Airflow's API server at /edgeexec.")
    )
    ui_page: bool = field(
        default=True, metadata=doc("Serve the fleet page in Airflow's UI (Admin → Edge agents), with Airflow's sign-in.")
    )
    redis_pool_size: int = field(
        default=64, metadata=doc("Redis connections per gateway; more concurrent calls wait for a free one.")
    )
    redis_timeout: float = field(
        default=10.0, metadata=doc("Seconds a Redis command (or connect) may take before it counts as failed.")
    )
    send_timeout: float = field(
        default=20.0, metadata=doc("Seconds one frame may take to reach an agent; a slower reader is cut off (4430).")
    )
    max_frames_per_second: float = field(
        default=2000.0,
        metadata=doc("Frames per second one agent session may send (bursts of 5 s allowed); more close with 4429."))
    max_log_bytes_per_second: float = field(
        default=8.0 * (1 << 20),
        metadata=doc("Log bytes per second one agent session may stream (bursts of 5 s allowed); more close with 4429."))
    token_recheck_interval: float = field(
        default=5.0,
        metadata=doc("Seconds between re-validations of open sessions' tokens (revoked or expired ones are cut off)."))
    metrics_token: str = field(
        default="", metadata=doc("If set, /metrics requires `Authorization: Bearer <this>`; admin tokens work too.")
    )
    metrics_interval: float = field(
        default=15.0, metadata=doc("Seconds fleet-wide gauges on /metrics are reused before Redis is read again.")
    )
    login_failures_per_minute: int = field(
        default=30, metadata=doc("Refused logins one client address may cause per minute; more get HTTP 429.")
    )

    @classmethod
    def load(cls, lookup: Lookup | None = None, **overrides: Any) -> GatewaySettings:
        return build(cls, SECTION, lookup or env_lookup(SECTION), overrides)

    def require_tls_pair(self) -> None:
        if bool(self.ssl_certfile) != bool(self.ssl_keyfile):
            raise ConfigError("TLS needs both ssl_certfile and ssl_keyfile (AIRFLOW__EDGEEXEC__SSL_CERTFILE / "
                              "AIRFLOW__EDGEEXEC__SSL_KEYFILE, or --ssl-certfile / --ssl-keyfile)")

    def require_secret(self) -> None:
        """The shared secret is a development convenience that must be switched on explicitly."""
        if self.allow_shared_secret and not self.shared_secret:
            raise ConfigError(
                "allow_shared_secret is on but no shared_secret is set: set AIRFLOW__EDGEEXEC__SHARED_SECRET, "
                "or turn allow_shared_secret off and give each agent a token (edgeexec token create)"
            )
        if self.shared_secret and not self.allow_shared_secret:
            raise ConfigError(
                "a shared_secret is set but allow_shared_secret is off: the shared secret is for development "
                "only. Use per-agent tokens (edgeexec token create), or set "
                "AIRFLOW__EDGEEXEC__ALLOW_SHARED_SECRET=true for a development setup"
            )


@dataclass(frozen=True)
class OperatorSettings:
    """Where operator commands go: `airflow edgeexec ...` and `agent status|maintenance|... --name`."""

    url: str = field(default="ws://127.0.0.1:8765/ws/agent", metadata=doc(
        "The gateway: its agent endpoint or base URL; operator commands use its /ws/control."))
    admin_token: str = field(default="", metadata=doc(
        "Admin token for operator commands (`edgeexec token create --admin`)."))
    ca_file: str = field(default="", metadata=doc("CA bundle to verify a wss:// gateway."))

    @classmethod
    def load(cls, lookup: Lookup | None = None, **overrides: Any) -> OperatorSettings:
        return build(cls, SECTION, lookup or env_lookup(SECTION), overrides)

    def require_admin(self) -> None:
        if not self.url or not self.admin_token:
            raise ConfigError("name the gateway ([edgeexec] url, AIRFLOW__EDGEEXEC__URL or --url) and an admin token "
                              "([edgeexec] admin_token, AIRFLOW__EDGEEXEC__ADMIN_TOKEN or --token; create one with "
                              "`edgeexec token create --admin`)")


@dataclass(frozen=True)
class ExecutorSettings(StoreSettings):
    sweep_interval: float = field(default=1.0, metadata=doc("Seconds between dead-agent sweeps."))
    task_stale_after: float = field(
        default=0.0,
        metadata=doc("A lost agent's task is failed once its Airflow heartbeat is this old; 0 = liveness."),
    )

    @property
    def stale_after(self) -> float:
        return self.task_stale_after or self.liveness

    @classmethod
    def load(cls, lookup: Lookup, overrides: Mapping[str, Any] | None = None) -> ExecutorSettings:
        return build(cls, SECTION, lookup, overrides)
