"""The Lua scripts shipped in edgeexec/store/lua, and one typed entry per script.

The scripts are the only code that changes slot accounting or job state, so every change is atomic
in Redis no matter how many gateways and schedulers run at once. Each script's arguments are
defined once, here, as a frozen dataclass whose fields are the script's ARGV in order (after the
prefix and the clock, ARGV[1] and ARGV[2]); every script binds them to locals of the same names at
its top, which tests/test_store_lua.py checks. ``parse`` turns the script's reply into a result
object, so the executor's store (airflow/redis_dispatcher.py) and the gateway's (gateway/store.py)
never decode by position.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from functools import cache
from importlib import resources
from typing import Any, ClassVar, Protocol, TypeVar

import orjson

from edgeexec.dispatch import Orphan

SCRIPT_NAMES = (
    "submit", "accept", "reject", "finish", "heartbeat", "register", "disconnect",
    "reap", "cancel", "adopt", "oversized", "forget",
)
FIRST_ARG = 3
"""ARGV[1] is the key prefix, ARGV[2] the clock ('' = Redis' own); a script's own arguments follow."""


def script_text(name: str) -> str:
    """The text of one file in edgeexec/store/lua (``lib`` for the prelude), as shipped."""
    if name not in (*SCRIPT_NAMES, "lib"):
        raise KeyError(f"unknown script {name!r}; known: {', '.join(SCRIPT_NAMES)}")
    return (resources.files("edgeexec.store") / "lua" / f"{name}.lua").read_text()


@cache
def source(name: str) -> str:
    """Prelude + script body, ready for EVAL/EVALSHA."""
    if name not in SCRIPT_NAMES:
        raise KeyError(f"unknown script {name!r}; known: {', '.join(SCRIPT_NAMES)}")
    return script_text("lib") + "\n" + script_text(name)


# --------------------------------------------------------------------------- results


@dataclass(frozen=True, slots=True)
class Assignment:
    """A job the gateway must push to an agent as a ``run`` frame."""

    job: str
    slots: int
    workload: str = field(repr=False)
    enqueued_ms: int = 0


def assignments(flat: Sequence[Any]) -> list[Assignment]:
    return [Assignment(str(flat[i]), int(flat[i + 1]), str(flat[i + 2]), int(flat[i + 3] or 0))
            for i in range(0, len(flat), 4)]


def _pairs(flat: Sequence[Any]) -> list[tuple[str, str]]:
    return [(str(flat[i]), str(flat[i + 1])) for i in range(0, len(flat), 2)]


@dataclass(frozen=True, slots=True)
class Registration:
    conflict: bool
    foreign: tuple[str, ...] = ()
    """Jobs the agent runs that are not (or no longer) its own: the gateway cancels them."""
    claimed: tuple[Assignment, ...] = ()
    maintenance: bool = False
    comments: str = ""
    returning: bool = False
    held: tuple[str, ...] = ()
    """The agent's running jobs Redis confirmed as its own."""
    cancels: tuple[tuple[str, str], ...] = ()
    """(job, reason) of held jobs revoked while the agent was away."""
    maintenance_cleared: bool = False
    other_session: str = ""
    """On a conflict: the session of the live agent that already holds the name."""


@dataclass(frozen=True, slots=True)
class Beat:
    current: bool
    """False: the session is no longer the agent's current one (the gateway ends it)."""
    claimed: list[Assignment]
    waiting: list[Assignment]
    """Assigned and not yet started: resent if this session has not been offered them."""
    cancels: list[tuple[str, str]]


@dataclass(frozen=True, slots=True)
class Finished:
    status: str
    """ok | duplicate | unknown | foreign"""
    claimed: list[Assignment]


@dataclass(frozen=True, slots=True)
class Reaped:
    lost: list[str]
    orphans: list[Orphan]


# --------------------------------------------------------------------------- entries

R = TypeVar("R", covariant=True)


class ScriptCall(Protocol[R]):
    NAME: ClassVar[str]

    def argv(self) -> list[Any]: ...

    def parse(self, raw: Any) -> R: ...


def _arg(value: Any) -> Any:
    if isinstance(value, bool):
        return "1" if value else "0"
    if value is None:
        return ""
    if isinstance(value, tuple | list | dict):
        return orjson.dumps(value)
    return value


class _Positional:
    """ARGV from the dataclass fields, in order."""

    __slots__ = ()

    def argv(self) -> list[Any]:
        return [_arg(getattr(self, f.name)) for f in fields(self)]  # type: ignore[arg-type]


@dataclass(frozen=True, slots=True)
class Submit(_Positional):
    NAME: ClassVar[str] = "submit"
    id: str
    ref: str
    queue: str
    slots: int
    priority: int
    owner: str
    kind: str
    payload: str = field(repr=False)
    label: str = ""
    """For people only (fleet pages): DAG, task, run and try."""

    def parse(self, raw: Any) -> tuple[str, str]:
        """(queued | exists, the agent it was placed on or '')."""
        return str(raw[0]), str(raw[1])


@dataclass(frozen=True, slots=True)
class Accept(_Positional):
    NAME: ClassVar[str] = "accept"
    agent: str
    id: str
    ttl_ms: int

    def parse(self, raw: Any) -> str:
        """ok | foreign | finished"""
        return str(raw)


@dataclass(frozen=True, slots=True)
class Reject(_Positional):
    NAME: ClassVar[str] = "reject"
    agent: str
    id: str

    def parse(self, raw: Any) -> str:
        """ok | ignored"""
        return str(raw)


@dataclass(frozen=True, slots=True)
class Finish(_Positional):
    NAME: ClassVar[str] = "finish"
    agent: str
    """'' = any (the executor's fail)."""
    id: str
    state: str
    reason: str
    exit: int | None
    ttl_ms: int
    max_jobs: int
    """How many jobs the agent may be refilled with in the same call (0: none)."""

    def parse(self, raw: Any) -> Finished:
        return Finished(str(raw[0]), assignments(raw[1]))


@dataclass(frozen=True, slots=True)
class Heartbeat:
    NAME: ClassVar[str] = "heartbeat"
    agent: str
    session: str
    state: str
    comments: str | None
    """None: unchanged."""
    metrics: dict[str, float] | None
    """None: unchanged."""

    def argv(self) -> list[Any]:
        return [self.agent, self.session, self.state, "\0" if self.comments is None else self.comments,
                "" if self.metrics is None else orjson.dumps(self.metrics).decode()]

    def parse(self, raw: Any) -> Beat:
        return Beat(raw[0] == "ok", assignments(raw[1]), assignments(raw[2]), _pairs(raw[3]))


@dataclass(frozen=True, slots=True)
class Register(_Positional):
    NAME: ClassVar[str] = "register"
    agent: str
    session: str
    gateway: str
    instance: str
    queues: tuple[str, ...]
    concurrency: int
    state: str
    comments: str
    liveness_ms: int
    reported: dict[str, str]
    """{job: state} as the agent's hello lists them."""
    versions: dict[str, str]
    ttl_ms: int
    token_queues: tuple[str, ...] | None
    """The queues the agent's token allows (None: any), kept for set-queues checks."""

    def parse(self, raw: Any) -> Registration:
        if raw[0] == "conflict":
            return Registration(conflict=True, other_session=str(raw[1]))
        return Registration(False, tuple(raw[1]), tuple(assignments(raw[2])), raw[3] == "1", str(raw[4]),
                            raw[5] == "1", tuple(raw[6]), tuple(_pairs(raw[7])), raw[8] == "1")


@dataclass(frozen=True, slots=True)
class Disconnect(_Positional):
    NAME: ClassVar[str] = "disconnect"
    agent: str
    session: str
    clean: bool
    """The agent said bye."""
    liveness_ms: int
    grace_ms: int
    """How long a socket that closed without bye has to come back before the reaper may act."""

    def parse(self, raw: Any) -> bool:
        """False: the session was no longer the agent's current one (nothing recorded)."""
        return bool(int(raw))


@dataclass(frozen=True, slots=True)
class Reap(_Positional):
    NAME: ClassVar[str] = "reap"
    liveness_ms: int
    """Only for agent records without their own window (written by older gateways)."""
    owner: str
    owner_ttl_ms: int

    def parse(self, raw: Any) -> Reaped:
        lost, flat = raw
        return Reaped([str(n) for n in lost], [Orphan(*flat[i:i + 4]) for i in range(0, len(flat), 5)])


@dataclass(frozen=True, slots=True)
class Cancel(_Positional):
    NAME: ClassVar[str] = "cancel"
    ref: str
    reason: str
    ttl_ms: int

    def parse(self, raw: Any) -> str:
        """cancelled | signalled | finished | unknown"""
        return str(raw)


@dataclass(frozen=True, slots=True)
class Adopt:
    NAME: ClassVar[str] = "adopt"
    owner: str
    refs: tuple[tuple[str, str], ...]
    """Variadic: the rest of ARGV, one ``ref<TAB>expected job id`` each. With an expected id (the
    one Airflow stored for the try), only that job is adopted: a try queued again after an earlier
    job of the same ref finished is not mistaken for it; '' adopts the ref's newest job."""

    def argv(self) -> list[Any]:
        return [self.owner, *(f"{ref}\t{expected}" for ref, expected in self.refs)]

    def parse(self, raw: Any) -> Mapping[str, str]:
        """ref -> job id for every ref that still has a job."""
        return {raw[i]: raw[i + 1] for i in range(0, len(raw), 3)}


@dataclass(frozen=True, slots=True)
class Oversized(_Positional):
    NAME: ClassVar[str] = "oversized"

    def parse(self, raw: Any) -> list[tuple[str, str, str]]:
        """(job, ref, why) of pending jobs no connected agent of their queue has the slots for."""
        return [(raw[i], raw[i + 1], raw[i + 2]) for i in range(0, len(raw), 3)]


@dataclass(frozen=True, slots=True)
class Forget(_Positional):
    NAME: ClassVar[str] = "forget"
    agent: str

    def parse(self, raw: Any) -> str:
        """forgotten | unknown | connected (refused) | busy (refused: it still holds jobs)"""
        return str(raw)


ENTRIES: dict[str, type[Any]] = {cls.NAME: cls for cls in (
    Submit, Accept, Reject, Finish, Heartbeat, Register, Disconnect, Reap, Cancel, Adopt, Oversized, Forget)}
"""Script name -> its entry; tests check it covers SCRIPT_NAMES and matches each script's ARGV locals."""
