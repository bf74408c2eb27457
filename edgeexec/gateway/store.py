"""The gateway's view of Redis: asyncio calls to the same Lua scripts the executor uses."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any, TypeVar

import redis.asyncio as aioredis

from edgeexec.protocol import MAX_STORED_LOG, Command, Hello, JobState, encode
from edgeexec.states import AgentState
from edgeexec.store import scripts
from edgeexec.store.clock import Clock, redis_time
from edgeexec.store.keys import Keys
from edgeexec.store.scripts import Assignment, Beat, Registration

BATCH_WINDOW_S = 0.005
BATCH_MAX = 256
R = TypeVar("R")
__all__ = ["Assignment", "Beat", "CommandRoute", "GatewayStore", "Registration"]


@dataclass(frozen=True, slots=True)
class CommandRoute:
    """Where an operator command for an agent goes: its gateway ('' when offline) and the queues
    its token allows (JSON, '' for any)."""

    gateway: str
    token_queues: str


class GatewayStore:
    """Every gateway read of job state and every gateway write to Redis (the status read models
    are in status.py; tokens in edgeexec/tokens/store.py)."""

    def __init__(self, client: aioredis.Redis, keys: Keys, *, liveness_s: float, job_ttl_s: int,
                 clock: Clock = redis_time) -> None:
        self.client = client
        self.keys = keys
        self.liveness_ms = int(liveness_s * 1000)
        self.ttl_ms = job_ttl_s * 1000
        self.clock = clock
        self._scripts = {n: client.register_script(scripts.source(n)) for n in scripts.SCRIPT_NAMES}
        self._batch = _Coalescer(client, BATCH_WINDOW_S)  # heartbeats: a few ms of latency is free
        self._tick = _Coalescer(client, 0.0)  # job frames: whatever arrived in the same loop turn

    def _argv(self, call: scripts.ScriptCall[Any]) -> list[Any]:
        return [self.keys.prefix, self.clock(), *call.argv()]

    async def _call(self, call: scripts.ScriptCall[R]) -> R:
        return call.parse(await self._scripts[call.NAME](keys=[], args=self._argv(call)))

    async def _hot(self, call: scripts.ScriptCall[R]) -> R:
        """A script on the per-job path: coalesced with the others of this loop turn into one pipeline."""
        return call.parse(await self._tick.call(self._scripts[call.NAME], self._argv(call)))

    async def register(self, hello: Hello, session: str, gateway: str,
                       token_queues: tuple[str, ...] | None = None) -> Registration:
        """``token_queues``: the queues the agent's token allows (None: any), kept for set-queues checks."""
        reported = {j.job: j.state.value for j in hello.jobs}
        return await self._call(scripts.Register(
            hello.name, session, gateway, hello.instance, tuple(hello.queues), hello.concurrency, hello.state,
            hello.comments, self.liveness_ms, reported, dict(hello.versions), self.ttl_ms, token_queues))

    async def disconnect(self, name: str, session: str, *, clean: bool, grace_s: float) -> None:
        await self._call(scripts.Disconnect(name, session, clean, self.liveness_ms, int(grace_s * 1000)))

    async def heartbeat(self, name: str, session: str, state: str, comments: str | None,
                        metrics: dict[str, float] | None) -> Beat:
        """Heartbeats arriving within a few milliseconds share one pipelined round trip to Redis:
        10 000 agents beating every 10 s are 1 000 script calls a second, and per-call client
        overhead, not Redis, is what a gateway spends its CPU on."""
        call = scripts.Heartbeat(name, session, state, comments, metrics)
        return call.parse(await self._batch.call(self._scripts[call.NAME], self._argv(call)))

    async def accept(self, name: str, job: str) -> str:
        return await self._hot(scripts.Accept(name, job, self.ttl_ms))

    async def reject(self, name: str, job: str) -> str:
        return await self._call(scripts.Reject(name, job))

    async def finish(self, name: str, job: str, state: JobState, reason: str, exit_code: int | None,
                     max_jobs: int) -> tuple[str, list[Assignment]]:
        done = await self._hot(scripts.Finish(name, job, state.value, reason, exit_code, self.ttl_ms, max_jobs))
        return done.status, done.claimed

    async def assigned_workload(self, name: str, job: str) -> Assignment | None:
        """The workload of a job assigned to ``name`` and not yet started, or None."""
        values: list[Any] = await self._tick.call("hmget", [self.keys.job(job), "agent", "state", "slots", "payload",
                                                            "enq"])
        agent, state, slots, payload, enq = values
        if agent != name or state != JobState.ASSIGNED.value or not payload:
            return None
        return Assignment(job, int(slots), payload, int(enq or 0))

    async def command_route(self, name: str) -> CommandRoute | None:
        """None: no agent of that name was ever registered."""
        key = self.keys.agent(name)
        values: Any = await self.client.hmget(key, ["connected", "gw", "tokq"])
        connected, gw, tokq = values
        if connected is None and gw is None and not await self.client.exists(key):
            return None
        return CommandRoute(gw if connected == "1" and gw else "", tokq or "")

    async def send_command(self, name: str, gateway: str, frame: Command, *, supersedes_intent: bool) -> bool:
        """Route a command to the gateway holding the agent's session; False if no gateway listens
        on that channel (the one the record names died). A maintenance command supersedes the
        intent an operator recorded while the agent was away ('mop')."""
        if supersedes_intent:
            await self.client.hdel(self.keys.agent(name), "mop")
        listeners = await self.client.publish(self.keys.gateway_channel(gateway), f"cmd\t{name}\t{encode(frame).decode()}")
        return bool(listeners)

    async def forget(self, name: str) -> str:
        """Remove an offline agent's record (``scripts.Forget``): forgotten, unknown, connected or busy."""
        return await self._call(scripts.Forget(name))

    async def record_maintenance_intent(self, name: str, on: bool, comments: str) -> None:
        """Maintenance for an offline agent: recorded on its record, applied by register.lua when
        it reconnects, whatever state the agent still reports."""
        state = AgentState.OFFLINE_MAINTENANCE if on else AgentState.OFFLINE
        await self.client.hset(self.keys.agent(name), mapping={
            "maintenance": "1" if on else "0", "comments": comments, "state": state.value, "mop": "on" if on else "off"})
        await self.client.publish(self.keys.status_channel, name)

    async def append_log(self, name: str, job: str, offset: int, raw: bytes) -> bool:
        """Keep a bounded, byte-exact copy of a job's log; ``offset`` is the byte offset in the agent's
        log file, so a chunk resent after a reconnect is not stored twice (nor a gap filled wrongly).
        Only the job's own agent may write it (False: the job is not, or no longer, ``name``'s)."""
        key = self.keys.log(job)
        pipe = self.client.pipeline(transaction=False)
        pipe.hget(self.keys.job(job), "agent")
        pipe.strlen(key)
        holder, have = await pipe.execute()
        if holder != name:
            return False
        if offset > have or offset + len(raw) <= have or have >= MAX_STORED_LOG:
            return True
        pipe = self.client.pipeline(transaction=False)
        pipe.append(key, raw[have - offset:])
        pipe.pexpire(key, self.ttl_ms)
        await pipe.execute()
        return True


class _Coalescer:
    """Collects Redis calls for ``window`` seconds (0: until the event loop's next turn), or
    BATCH_MAX of them, and sends them as one pipeline; each caller gets its own result or error.

    Per-call client overhead, not Redis, is what a gateway spends its CPU on: one round trip for
    a batch of script calls costs little more than one for a single call. Each call is still
    atomic on its own (a script), and one agent's frames are still handled in order, because its
    session awaits each result before reading its next frame.
    """

    def __init__(self, client: aioredis.Redis, window: float) -> None:
        self.client, self.window = client, window
        self.pending: list[tuple[Any, list[Any], asyncio.Future[Any]]] = []
        self.timer: asyncio.Task[None] | None = None
        self.running: set[asyncio.Task[None]] = set()

    async def call(self, op: Any, args: list[Any]) -> Any:
        """``op`` is a registered script, or the name of a plain command such as ``"hmget"``."""
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self.pending.append((op, args, fut))
        if len(self.pending) >= BATCH_MAX:
            self._spawn(self._run(self._take()))
        elif self.timer is None:
            self.timer = self._spawn(self._after_window())
        return await fut

    def _spawn(self, coro: Any) -> asyncio.Task[None]:
        task: asyncio.Task[None] = asyncio.get_running_loop().create_task(coro)
        self.running.add(task)
        task.add_done_callback(self.running.discard)
        return task

    def _take(self) -> list[tuple[Any, list[Any], asyncio.Future[Any]]]:
        batch, self.pending = self.pending, []
        return batch

    async def _after_window(self) -> None:
        await asyncio.sleep(self.window)
        self.timer = None
        await self._run(self._take())

    async def _run(self, batch: list[tuple[Any, list[Any], asyncio.Future[Any]]]) -> None:
        if not batch:
            return
        results: list[Any]
        try:
            pipe = self.client.pipeline(transaction=False)
            for op, args, _ in batch:
                if isinstance(op, str):
                    getattr(pipe, op)(*args)
                else:
                    await op(keys=[], args=args, client=pipe)
            results = await pipe.execute(raise_on_error=False)
        except Exception as exc:  # noqa: BLE001 - handed to every caller, which handles it as before
            results = [exc] * len(batch)
        for (_, _, fut), res in zip(batch, results, strict=True):
            if fut.done():
                continue
            if isinstance(res, BaseException):
                fut.set_exception(res)
            else:
                fut.set_result(res)
