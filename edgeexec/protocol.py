"""The agent <-> gateway wire protocol: frozen dataclasses and pure encode/decode.

Theory of operation
-------------------
Every frame is one JSON object with a ``type`` field. :func:`decode` turns bytes or text into
one of the frame classes below or raises :class:`ProtocolError` saying exactly which field was
wrong; :func:`encode` is its inverse. Nothing here does I/O, so the whole protocol is tested
without sockets and both the gateway and the agent share the same validation.

A session is::

    agent                                   gateway
      | -- HTTP upgrade + Authorization -->  |   (refused with 401/403/503 before accept)
      | -- Hello ------------------------->  |
      | <-------------------------- Welcome  |   (or Error + close)
      | -- StateReport (buffered, resent) ->  |
      | <------------------------------ Ack  |
      | <------------------------------ Run  |
      | -- Accepted ---------------------->  |   (the agent claims the job and holds its slots)
      | <---------------------------- Start  |   (Redis says the job is still this agent's: run it)
      | -- Heartbeat / LogChunk ---------->  |
      | -- StateReport ------------------->  |
      | <------------------------------ Ack  |
      | -- Bye --------------------------->  |

The agent lists every protocol version it speaks in ``Hello.protocols``; the gateway picks the
highest one it also speaks and names it in ``Welcome.protocol``.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from enum import IntEnum, StrEnum
from typing import Any, ClassVar, NotRequired, TypedDict

import orjson

from edgeexec.errors import PeerError

# re-exported: the states are part of the wire vocabulary
from edgeexec.states import ACCEPTING_STATES as ACCEPTING_STATES
from edgeexec.states import AgentState
from edgeexec.states import JobState as JobState

PROTOCOL_VERSIONS: tuple[int, ...] = (2, 3)
"""Version 2 added ``start``: an agent starts a process only after Redis confirmed the job is its
own, so a job re-placed while its ``run`` frame was in flight never starts twice. Version 3 sends
log pieces as raw bytes (base64, field ``b64``), so a log is byte-exact whatever a task writes; a
version-2 agent's text pieces are still accepted."""
MAX_STORED_LOG = 1 << 20
"""Bytes of a job's log the gateway stores; the agent streams no more than this per job."""
MAX_LOG_PIECE = 64 * 1024
"""Raw bytes in one ``log`` frame: the agent splits larger reads, the gateway refuses larger pieces."""


def log_piece_limit(max_frame: int) -> int:
    """Raw bytes per ``log`` frame such that the frame (base64 is 4/3, plus the envelope) fits in
    the gateway's ``max_frame`` (told in ``welcome``)."""
    return max(1024, min(MAX_LOG_PIECE, (max_frame - 1024) * 3 // 4))
MAX_QUEUE_NAME = 256
MAX_AGENT_NAME = 253
MAX_QUEUES = 64
MAX_CONCURRENCY = 4096
MAX_REASON = 4096
_AGENT_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:@-]*$")
_QUEUE_FORBIDDEN = re.compile(r"[\s,\x00-\x1f]")


class CloseCode(IntEnum):
    """WebSocket close codes the gateway uses; what each means and does is :data:`CLOSE_POLICY`."""

    NORMAL = 1000
    GOING_AWAY = 1001
    MESSAGE_TOO_BIG = 1009
    TRY_AGAIN_LATER = 1013
    MALFORMED = 4400
    FORBIDDEN = 4403
    HELLO_TIMEOUT = 4408
    NAME_IN_USE = 4409
    UNSUPPORTED_PROTOCOL = 4426
    INVALID_HELLO = 4422
    SESSION_REPLACED = 4410
    SILENT = 4411
    """No frame from the agent for longer than its liveness window (the transport may be half dead)."""
    NOT_YOURS = 4412
    """A frame named a job this session does not hold: a broken or hostile agent, cut off."""
    OVER_BUDGET = 4429
    """The agent exceeded a per-session budget (frames per second, log bytes); it may reconnect."""
    SLOW_READER = 4430
    """The agent stopped reading its socket: its send queue filled or a send timed out."""


@dataclass(frozen=True, slots=True)
class ClosePolicy:
    meaning: str
    fatal: bool = False
    """Only a configuration change fixes it: the agent exits (code 2) instead of reconnecting."""


CLOSE_POLICY: dict[CloseCode, ClosePolicy] = {
    CloseCode.NORMAL: ClosePolicy("normal close (after `bye`, or the agent re-registers)"),
    CloseCode.GOING_AWAY: ClosePolicy("gateway shutting down"),
    CloseCode.MESSAGE_TOO_BIG: ClosePolicy("frame larger than `max_frame_bytes`"),
    CloseCode.TRY_AGAIN_LATER: ClosePolicy("the gateway lost its Redis connection while serving the session "
                                           "(Redis restart, Sentinel failover); running jobs and unacked results "
                                           "are resent in `hello`"),
    CloseCode.MALFORMED: ClosePolicy("malformed frame: not JSON, unknown `type`, wrong field type; the `error` "
                                     "frame names the field", fatal=True),
    CloseCode.FORBIDDEN: ClosePolicy("forbidden: the token does not allow this, or it was revoked or expired",
                                     fatal=True),
    CloseCode.HELLO_TIMEOUT: ClosePolicy("no `hello` within `hello_timeout`"),
    CloseCode.NAME_IN_USE: ClosePolicy("another live process already uses this agent name (succeeds once the "
                                       "other is gone)"),
    CloseCode.SESSION_REPLACED: ClosePolicy("a newer session of the same agent replaced this one"),
    CloseCode.SILENT: ClosePolicy("no frame from the agent for longer than its liveness window"),
    CloseCode.NOT_YOURS: ClosePolicy("too many frames named jobs this session does not hold (a broken or "
                                     "hostile agent); none was written"),
    CloseCode.INVALID_HELLO: ClosePolicy("invalid `hello` (bad name, queue name, concurrency)", fatal=True),
    CloseCode.UNSUPPORTED_PROTOCOL: ClosePolicy("no common protocol version", fatal=True),
    CloseCode.OVER_BUDGET: ClosePolicy("the agent exceeded a budget: `max_frames_per_second` or "
                                       "`max_log_bytes_per_second`"),
    CloseCode.SLOW_READER: ClosePolicy("the agent stopped reading its socket: its send queue filled or a send "
                                       "took longer than `send_timeout`"),
}
"""The one home of the close-code policy: the agent's reconnect decision, the gateway's ``retry``
flag and docs/protocol.md's table are all derived from it."""
FATAL_CLOSE_CODES = frozenset(int(c) for c, policy in CLOSE_POLICY.items() if policy.fatal)


class ProtocolError(PeerError, ValueError):
    """The peer sent a frame we cannot accept; ``str()`` says what was wrong and what to do."""

    def __init__(self, message: str, code: CloseCode = CloseCode.MALFORMED) -> None:
        super().__init__(message)
        self.code = code


# --------------------------------------------------------------------------- field validators


def _req(obj: Mapping[str, Any], name: str, frame: str) -> Any:
    if name not in obj:
        raise ProtocolError(f"{frame} frame is missing the required field {name!r}")
    return obj[name]


def _str(value: Any, name: str, frame: str, max_len: int = 1 << 20) -> str:
    if not isinstance(value, str):
        raise ProtocolError(f"{frame}.{name} must be a string, got {type(value).__name__}")
    if len(value) > max_len:
        raise ProtocolError(f"{frame}.{name} is {len(value)} characters long; the limit is {max_len}")
    return value


def _int(value: Any, name: str, frame: str, lo: int = 0, hi: int = 1 << 62) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ProtocolError(f"{frame}.{name} must be an integer, got {type(value).__name__}")
    if not lo <= value <= hi:
        raise ProtocolError(f"{frame}.{name}={value} is out of range [{lo}, {hi}]")
    return value


def _opt_int(value: Any, name: str, frame: str) -> int | None:
    return None if value is None else _int(value, name, frame, -(1 << 31), 1 << 31)


def _bool(value: Any, name: str, frame: str) -> bool:
    if not isinstance(value, bool):
        raise ProtocolError(f"{frame}.{name} must be true or false, got {type(value).__name__}")
    return value


def _dict(value: Any, name: str, frame: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ProtocolError(f"{frame}.{name} must be an object, got {type(value).__name__}")
    return value


def _list(value: Any, name: str, frame: str, max_items: int) -> list[Any]:
    if not isinstance(value, list):
        raise ProtocolError(f"{frame}.{name} must be a list, got {type(value).__name__}")
    if len(value) > max_items:
        raise ProtocolError(f"{frame}.{name} has {len(value)} items; the limit is {max_items}")
    return value


def _job(d: Mapping[str, Any], frame: str) -> str:
    return _str(_req(d, "job", frame), "job", frame, 128)


def _job_and_reason(d: Mapping[str, Any], frame: str) -> dict[str, str]:
    """The fields of every frame that names a job and says why."""
    return {"job": _job(d, frame),
            "reason": _str(d.get("reason", ""), "reason", frame, MAX_REASON)}


def validate_agent_name(name: str) -> str:
    """Agent names become Redis keys and log fields, so keep them to a host-name-like alphabet."""
    if not name or len(name) > MAX_AGENT_NAME or not _AGENT_NAME_RE.match(name):
        raise ProtocolError(
            f"agent name {name[:80]!r} is invalid: use 1-{MAX_AGENT_NAME} characters from "
            "letters, digits and . _ : @ - (starting with a letter or digit)",
            CloseCode.INVALID_HELLO,
        )
    return name


TEAM_NAME = re.compile(r"^[A-Za-z0-9_-]{3,50}$")
"""Airflow's own rule for team names (`airflow teams create`); they become a key prefix."""


def validate_team_name(team: str) -> str:
    """'' (no team) or an Airflow team name."""
    if team and not TEAM_NAME.match(team):
        raise ProtocolError(f"team {team[:60]!r} is not a valid Airflow team name: 3-50 letters, digits, '_' or '-'",
                            CloseCode.INVALID_HELLO)
    return team


def validate_queue_name(queue: str) -> str:
    """Queue names are Airflow's ``queue=`` values; commas and whitespace would break the CLI lists."""
    if not queue or len(queue) > MAX_QUEUE_NAME or _QUEUE_FORBIDDEN.search(queue):
        raise ProtocolError(
            f"queue name {queue[:80]!r}{'...' if len(queue) > 80 else ''} is invalid: "
            f"use 1-{MAX_QUEUE_NAME} characters without commas, whitespace or control characters",
            CloseCode.INVALID_HELLO,
        )
    return queue


def _job_state(value: Any, name: str, frame: str) -> JobState:
    try:
        return JobState(_str(value, name, frame, 32))
    except ValueError:
        allowed = ", ".join(s.value for s in JobState)
        raise ProtocolError(f"{frame}.{name}={value!r} is not a job state; use one of {allowed}") from None


# --------------------------------------------------------------------------- frames


@dataclass(frozen=True, slots=True)
class JobStatus:
    """One job the agent still holds, listed in Hello so the gateway can reconcile after a reconnect.

    ``assigned`` is a job the agent claimed but never started (its ``start`` did not arrive before
    the session ended): the gateway returns it to pending, whatever Redis recorded meanwhile.
    """

    job: str
    state: JobState

    @classmethod
    def from_obj(cls, obj: Any) -> JobStatus:
        """An ``exit_code`` sent by older agents is ignored: a finished job's result is its ``state``
        frame, resent after the welcome."""
        d = _dict(obj, "jobs[]", "hello")
        return cls(
            job=_job(d, "hello.jobs[]"),
            state=_job_state(_req(d, "state", "hello.jobs[]"), "state", "hello.jobs[]"),
        )


@dataclass(frozen=True, slots=True)
class Hello:
    """First frame of a session: who the agent is and what it can do."""

    TYPE: ClassVar[str] = "hello"
    name: str
    instance: str
    queues: tuple[str, ...]
    concurrency: int
    protocols: tuple[int, ...] = PROTOCOL_VERSIONS
    versions: dict[str, str] = field(default_factory=dict)
    jobs: tuple[JobStatus, ...] = ()
    state: str = "idle"
    comments: str = ""
    team: str = ""
    """The Airflow team the agent was started for ('' = none); a gateway serves one team's fleet."""

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Hello:
        f = "hello"
        queues = tuple(
            validate_queue_name(_str(q, "queues[]", f, MAX_QUEUE_NAME + 1))
            for q in _list(_req(d, "queues", f), "queues", f, MAX_QUEUES)
        )
        if not queues:
            raise ProtocolError("hello.queues is empty: an agent must serve at least one queue",
                                CloseCode.INVALID_HELLO)
        versions = {str(k): str(v)[:64] for k, v in _dict(d.get("versions", {}), "versions", f).items()}
        return cls(
            name=validate_agent_name(_str(_req(d, "name", f), "name", f, MAX_AGENT_NAME + 1)),
            instance=_str(_req(d, "instance", f), "instance", f, 64),
            queues=queues,
            concurrency=_int(_req(d, "concurrency", f), "concurrency", f, 1, MAX_CONCURRENCY),
            protocols=tuple(_int(p, "protocols[]", f) for p in _list(_req(d, "protocols", f), "protocols", f, 16)),
            versions=dict(list(versions.items())[:16]),
            jobs=tuple(JobStatus.from_obj(j) for j in _list(d.get("jobs", []), "jobs", f, MAX_CONCURRENCY)),
            state=_str(d.get("state", "idle"), "state", f, 32),
            comments=_str(d.get("comments", ""), "comments", f, MAX_REASON),
            team=validate_team_name(_str(d.get("team", ""), "team", f, 51)),
        )


@dataclass(frozen=True, slots=True)
class Welcome:
    """The gateway accepted the session; tells the agent how to behave on it."""

    TYPE: ClassVar[str] = "welcome"
    session: str
    protocol: int
    heartbeat_interval: float
    max_frame: int
    warnings: tuple[str, ...] = ()
    maintenance: bool = False
    """The fleet's record says this agent is in maintenance (it survives agent restarts)."""
    comments: str = ""
    maintenance_cleared: bool = False
    """An operator ended this agent's maintenance while it was away: the agent leaves maintenance."""

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Welcome:
        f = "welcome"
        hb = _req(d, "heartbeat_interval", f)
        if isinstance(hb, bool) or not isinstance(hb, int | float) or hb <= 0:
            raise ProtocolError("welcome.heartbeat_interval must be a positive number")
        return cls(
            session=_str(_req(d, "session", f), "session", f, 64),
            protocol=_int(_req(d, "protocol", f), "protocol", f),
            heartbeat_interval=float(hb),
            max_frame=_int(_req(d, "max_frame", f), "max_frame", f, 1024),
            warnings=tuple(_str(w, "warnings[]", f, MAX_REASON) for w in _list(d.get("warnings", []), "warnings", f, 16)),
            maintenance=_bool(d.get("maintenance", False), "maintenance", f),
            comments=_str(d.get("comments", ""), "comments", f, MAX_REASON),
            maintenance_cleared=_bool(d.get("maintenance_cleared", False), "maintenance_cleared", f),
        )


@dataclass(frozen=True, slots=True)
class Heartbeat:
    """Liveness plus system metrics; the gateway stores them and moves the agent's liveness deadline."""

    TYPE: ClassVar[str] = "heartbeat"
    used: int = 0
    """The agent's own count of slots in use. Not read by the gateway (the scripts count slots);
    gateways of this release accept its absence, agents still send it because earlier gateways
    require it."""
    metrics: dict[str, float] = field(default_factory=dict)
    state: str = "idle"

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Heartbeat:
        f = "heartbeat"
        raw = _dict(d.get("metrics", {}), "metrics", f)
        metrics: dict[str, float] = {}
        for k, v in list(raw.items())[:32]:
            if isinstance(v, int | float) and not isinstance(v, bool):
                metrics[str(k)[:64]] = float(v)
        return cls(
            used=_int(d.get("used", 0), "used", f, 0, MAX_CONCURRENCY),
            metrics=metrics,
            state=_str(d.get("state", "idle"), "state", f, 32),
        )


@dataclass(frozen=True, slots=True)
class Run:
    """Start this workload. ``workload`` is Airflow's workload JSON and carries a secret token."""

    TYPE: ClassVar[str] = "run"
    job: str
    workload: str = field(repr=False)
    slots: int = 1

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Run:
        f = "run"
        return cls(
            job=_job(d, f),
            workload=_str(_req(d, "workload", f), "workload", f),
            slots=_int(d.get("slots", 1), "slots", f, 1, MAX_CONCURRENCY),
        )


@dataclass(frozen=True, slots=True)
class Accepted:
    """The agent claims the job (its slots are held); it starts the process when ``start`` comes."""

    TYPE: ClassVar[str] = "accepted"
    job: str

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Accepted:
        return cls(job=_job(d, "accepted"))


@dataclass(frozen=True, slots=True)
class Start:
    """The claim was recorded: the job is running on this agent from now on, so start its process.

    Sent only after Redis moved the job from assigned to running for this agent. Without it, a
    job the reaper re-placed while its ``run`` frame was in flight could start on two agents.
    """

    TYPE: ClassVar[str] = "start"
    job: str

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Start:
        return cls(job=_job(d, "start"))


@dataclass(frozen=True, slots=True)
class Rejected:
    """The agent cannot take the job (draining, no free slot); the gateway returns it to pending."""

    TYPE: ClassVar[str] = "rejected"
    job: str
    reason: str = ""

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Rejected:
        return cls(**_job_and_reason(d, "rejected"))


@dataclass(frozen=True, slots=True)
class StateReport:
    """A job reached a state on the agent. Terminal reports are buffered by the agent until acked."""

    TYPE: ClassVar[str] = "state"
    job: str
    state: JobState
    exit_code: int | None = None
    reason: str = ""

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> StateReport:
        f = "state"
        state = _job_state(_req(d, "state", f), "state", f)
        if state not in (JobState.RUNNING, JobState.SUCCESS, JobState.FAILED):
            raise ProtocolError(f"state.state={state.value!r}: an agent reports only running, success or failed")
        return cls(
            job=_job(d, f),
            state=state,
            exit_code=_opt_int(d.get("exit_code"), "exit_code", f),
            reason=_str(d.get("reason", ""), "reason", f, MAX_REASON),
        )


@dataclass(frozen=True, slots=True)
class Ack:
    """The gateway stored the job's terminal state; the agent may forget the job."""

    TYPE: ClassVar[str] = "ack"
    job: str
    state: JobState

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Ack:
        return cls(job=_job(d, "ack"), state=_job_state(_req(d, "state", "ack"), "state", "ack"))


@dataclass(frozen=True, slots=True)
class LogChunk:
    """A piece of a job's log file: raw bytes at a *byte* offset in the agent's file.

    Bytes travel base64-encoded (``b64``) so every byte a task writes, invalid UTF-8 and
    characters split across pieces included, is stored exactly; the offset makes a resend after
    a reconnect idempotent. A version-2 agent sends text in ``data`` instead (UTF-8 on arrival).
    """

    TYPE: ClassVar[str] = "log"
    job: str
    offset: int
    b64: str

    @classmethod
    def of(cls, job: str, offset: int, data: bytes) -> LogChunk:
        return cls(job=job, offset=offset, b64=base64.b64encode(data).decode())

    @property
    def raw(self) -> bytes:
        return base64.b64decode(self.b64)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> LogChunk:
        f = "log"
        limit = MAX_LOG_PIECE
        if "data" in d and "b64" not in d:  # a version-2 agent: 64 Ki characters, each up to 4 bytes
            raw = _str(d["data"], "data", f, MAX_LOG_PIECE).encode()
            limit = 4 * MAX_LOG_PIECE
        else:
            text = _str(_req(d, "b64", f), "b64", f, 4 * MAX_LOG_PIECE // 3 + 4)
            try:
                raw = base64.b64decode(text, validate=True)
            except (binascii.Error, ValueError):
                raise ProtocolError("log.b64 is not valid base64; send the piece's raw bytes base64-encoded") from None
        if len(raw) > limit:
            raise ProtocolError(f"log piece is {len(raw)} bytes; the limit is {limit}: split it")
        return cls.of(_job(d, f), _int(_req(d, "offset", f), "offset", f), raw)


@dataclass(frozen=True, slots=True)
class AgentStatus:
    """The agent's own state changed (drain, maintenance); dispatch follows ``ACCEPTING_STATES``."""

    TYPE: ClassVar[str] = "status"
    state: str
    comments: str = ""

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> AgentStatus:
        f = "status"
        return cls(
            state=_str(_req(d, "state", f), "state", f, 32),
            comments=_str(d.get("comments", ""), "comments", f, MAX_REASON),
        )


@dataclass(frozen=True, slots=True)
class Cancel:
    """Stop this job's process (revoked by the scheduler)."""

    TYPE: ClassVar[str] = "cancel"
    job: str
    reason: str = ""

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Cancel:
        return cls(**_job_and_reason(d, "cancel"))


class Action(StrEnum):
    """Operator commands for an agent; ``ACTIONS`` holds what each one may do and needs."""

    MAINTENANCE_ON = "maintenance_on"
    MAINTENANCE_OFF = "maintenance_off"
    DRAIN = "drain"
    SHUTDOWN = "shutdown"
    SET_QUEUES = "set_queues"
    SET_CONCURRENCY = "set_concurrency"
    REMOVE = "remove"


@dataclass(frozen=True, slots=True)
class ActionRule:
    summary: str
    registers: bool = False
    """Changes what the agent registers with, so it applies by a new hello: only through the
    gateway (which checks it against the agent's token), never over the local socket."""
    offline: bool = False
    """Recorded for an agent that is offline and applied when it reconnects."""
    needs: str = ""
    """The Command field it cannot do without."""
    agent: bool = True
    """Sent to the agent; False: the gateway does it on the agent's record, and only while the
    agent is offline (there is no agent to ask)."""


ACTIONS: dict[Action, ActionRule] = {
    Action.MAINTENANCE_ON: ActionRule("finish running jobs, take no new ones, keep the comment", offline=True),
    Action.MAINTENANCE_OFF: ActionRule("take jobs again", offline=True),
    Action.DRAIN: ActionRule("take no new jobs, exit when the running ones finished"),
    Action.SHUTDOWN: ActionRule("terminate running jobs and exit"),
    Action.SET_QUEUES: ActionRule("serve these queues (within the token's)", registers=True, needs="queues"),
    Action.SET_CONCURRENCY: ActionRule("run this many slots", registers=True, needs="concurrency"),
    Action.REMOVE: ActionRule("forget an offline agent's record (refused while it is connected or holds jobs)",
                              agent=False),
}
"""The one table of operator commands: the gateway's control endpoint, the agent's local socket,
the CLIs and the agent itself all read it."""
LOCAL_ACTIONS = frozenset(a for a, rule in ACTIONS.items() if rule.agent and not rule.registers)


@dataclass(frozen=True, slots=True)
class Command:
    """An operator command for the agent (one of ``ACTIONS``)."""

    TYPE: ClassVar[str] = "command"
    action: str
    comments: str = ""
    queues: tuple[str, ...] = ()
    concurrency: int = 0

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Command:
        f = "command"
        action = _str(_req(d, "action", f), "action", f, 32)
        if action not in ACTIONS:
            raise ProtocolError(f"command.action={action!r} is unknown; use one of {', '.join(sorted(ACTIONS))}")
        queues = tuple(validate_queue_name(_str(q, "queues[]", f, MAX_QUEUE_NAME + 1))
                       for q in _list(d.get("queues", []), "queues", f, MAX_QUEUES))
        concurrency = _int(d.get("concurrency", 0), "concurrency", f, 0, MAX_CONCURRENCY)
        needs = ACTIONS[Action(action)].needs
        if needs == "queues" and not queues:
            raise ProtocolError(f"command {action} needs a non-empty 'queues' list")
        if needs == "concurrency" and not concurrency:
            raise ProtocolError(f"command {action} needs 'concurrency' between 1 and {MAX_CONCURRENCY}")
        return cls(action=action, comments=_str(d.get("comments", ""), "comments", f, MAX_REASON),
                   queues=queues, concurrency=concurrency)


@dataclass(frozen=True, slots=True)
class Bye:
    """The agent is leaving on purpose (drained); its session ends cleanly."""

    TYPE: ClassVar[str] = "bye"
    reason: str = ""

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Bye:
        return cls(reason=_str(d.get("reason", ""), "reason", "bye", MAX_REASON))


@dataclass(frozen=True, slots=True)
class Error:
    """The gateway refuses something; sent before a close so the agent can log why."""

    TYPE: ClassVar[str] = "error"
    code: int
    message: str
    retry: bool = False

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Error:
        f = "error"
        return cls(
            code=_int(_req(d, "code", f), "code", f, 0, 65535),
            message=_str(_req(d, "message", f), "message", f, MAX_REASON),
            retry=_bool(d.get("retry", False), "retry", f),
        )


Frame = (
    Hello | Welcome | Heartbeat | Run | Accepted | Start | Rejected | StateReport | Ack | LogChunk
    | AgentStatus | Cancel | Command | Bye | Error
)
_FRAME_TYPES: dict[str, Any] = {
    cls.TYPE: cls
    for cls in (Hello, Welcome, Heartbeat, Run, Accepted, Start, Rejected, StateReport, Ack, LogChunk,
                AgentStatus, Cancel, Command, Bye, Error)
}
AGENT_FRAMES = frozenset({"hello", "heartbeat", "accepted", "rejected", "state", "log", "status", "bye"})
GATEWAY_FRAMES = frozenset({"welcome", "run", "start", "ack", "cancel", "command", "error"})


def _plain(value: Any) -> Any:
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    if isinstance(value, JobStatus):
        return {f.name: _plain(getattr(value, f.name)) for f in fields(value)}
    return value


def to_dict(frame: Frame) -> dict[str, Any]:
    """The frame as a plain JSON-ready dict, ``type`` first."""
    out: dict[str, Any] = {"type": frame.TYPE}
    for f in fields(frame):
        out[f.name] = _plain(getattr(frame, f.name))
    return out


def encode(frame: Frame) -> bytes:
    return orjson.dumps(to_dict(frame))


def encode_for(frame: Frame, version: int) -> bytes:
    """``frame`` as a peer speaking protocol ``version`` reads it: a version-2 gateway knows log
    pieces only as text (``data``), so an upgraded agent can still talk to it."""
    if isinstance(frame, LogChunk) and version < 3:
        return orjson.dumps({"type": "log", "job": frame.job, "offset": frame.offset,
                             "data": frame.raw.decode(errors="replace")})
    return encode(frame)


def decode(data: bytes | str, *, allowed: frozenset[str] | None = None) -> Frame:
    """Parse one frame; ``allowed`` restricts which types this side may receive."""
    try:
        obj = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise ProtocolError(f"frame is not valid JSON ({exc}); send one JSON object per frame") from None
    if not isinstance(obj, dict):
        raise ProtocolError(f"frame must be a JSON object, got {type(obj).__name__}")
    kind = obj.get("type")
    cls = _FRAME_TYPES.get(kind) if isinstance(kind, str) else None
    if cls is None or (allowed is not None and kind not in allowed):
        known = ", ".join(sorted(allowed if allowed is not None else _FRAME_TYPES))
        raise ProtocolError(f"unknown frame type {str(kind)[:40]!r}; this side accepts: {known}")
    frame: Frame = cls.from_dict(obj)
    return frame


def negotiate(offered: tuple[int, ...], supported: tuple[int, ...] = PROTOCOL_VERSIONS) -> int:
    """Pick the highest protocol version both sides speak."""
    common = set(offered) & set(supported)
    if not common:
        raise ProtocolError(
            f"no common protocol version: agent speaks {list(offered)}, gateway speaks {list(supported)}; "
            "upgrade the older side",
            CloseCode.UNSUPPORTED_PROTOCOL,
        )
    return max(common)


def version_warnings(agent: Mapping[str, str], gateway: Mapping[str, str]) -> tuple[str, ...]:
    """Differences in edgeexec/Airflow versions are a warning, never a refusal."""
    out = []
    for name in ("edgeexec", "airflow"):
        a, g = agent.get(name), gateway.get(name)
        if a and g and a != g:
            out.append(f"{name} version differs: agent {a}, gateway {g}")
    return tuple(out)


# --------------------------------------------------------------------------- control protocol
# /ws/control (admin clients: the CLIs, the dashboard) and the agent's local socket speak the same
# JSON objects. Client -> server: {"type": "subscribe"} or a command ({"type": "command", "agent":
# NAME | "*", "action": ..., "id": any, ...}); server -> client: the shapes below.


class JobRecord(TypedDict):
    job: str
    ref: str
    state: str
    kind: NotRequired[str]
    queue: NotRequired[str]
    label: NotRequired[str]


class AgentRecord(TypedDict):
    """One agent as every status view shows it (no secrets: tokens and workloads never appear)."""

    name: str
    state: str
    connected: bool
    queues: list[str]
    concurrency: int
    used: int
    metrics: dict[str, Any]
    comments: str
    maintenance: bool
    jobs: list[JobRecord]
    last_seen_ms: NotRequired[int]
    since_ms: NotRequired[int]
    gateway: NotRequired[str]
    versions: NotRequired[dict[str, str]]


AGENT_RECORD_CHANGES = ("state", "queues", "concurrency", "used", "jobs", "comments", "connected")
"""The fields whose change is worth an ``agent`` delta to a watcher (not metrics, not last_seen)."""


def snapshot(agents: list[AgentRecord], queues: Mapping[str, Any],
             operator: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The fleet, and (``operator``) who the session is and whether it may command."""
    return {"type": "snapshot", "agents": agents, "queues": dict(queues), "operator": dict(operator or {})}


def session_info(operator: Mapping[str, Any]) -> dict[str, Any]:
    """The session's operator changed (a permission was granted or withdrawn)."""
    return {"type": "session", "operator": dict(operator)}


def agent_delta(record: AgentRecord) -> dict[str, Any]:
    return {"type": "agent", "agent": record}


def queues_delta(queues: Mapping[str, Any]) -> dict[str, Any]:
    return {"type": "queues", "queues": dict(queues)}


def command_result(ok: bool, message: str, request_id: Any = None) -> dict[str, Any]:
    return {"type": "result", "ok": ok, "message": message, "id": request_id}


def control_error(message: str) -> dict[str, Any]:
    return {"type": "error", "message": message}


def subscribe() -> dict[str, Any]:
    return {"type": "subscribe"}


def control_command(agent: str, action: str, request_id: Any, **fields: Any) -> dict[str, Any]:
    return {"type": "command", "agent": agent, "action": action, "id": request_id, **fields}


def removed_agent(name: str) -> dict[str, Any]:
    """An operator removed an offline agent's record: watchers drop it from their view."""
    return {"type": "removed", "agent": name}


def gone_agent(name: str) -> AgentRecord:
    """An agent whose process has exited, as the local socket's watcher last sees it."""
    return {"name": name, "state": AgentState.OFFLINE, "connected": False, "queues": [], "concurrency": 0, "used": 0,
            "metrics": {}, "comments": "", "maintenance": False, "jobs": []}
