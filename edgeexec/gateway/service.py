"""The gateway's agent side: authenticate, register, push work, record what agents report.

Theory of operation
-------------------
A gateway holds no state that matters: every decision (which job goes to which agent, slot
counts, job states) is a Lua script in Redis. The gateway only

* refuses bad clients *before* accepting the WebSocket (401/403/503 as HTTP responses, so
  a misconfigured agent backs off instead of retry-storming an accepted-then-closed socket);
* turns frames into script calls and script results into ``run``/``cancel``/``ack`` frames;
* listens on its pub/sub channel for jobs that schedulers placed on its agents.

A lost pub/sub notice costs at most one heartbeat interval: every heartbeat returns the agent's
assigned-but-unstarted jobs and its revoked running jobs, and the gateway resends the runs it has
not pushed in this session and every cancel.

An agent is the least trusted party. Every frame is checked against what its session holds before
anything is written (a job not pushed to or confirmed for this session is refused without a Redis
call), every session has budgets (frames and log bytes per second) and a bounded send queue
(session.py), and its token is re-validated every few seconds, so a revocation or expiry ends
agent and control sessions on every gateway even if the pub/sub notice was lost.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Iterable, Mapping
from typing import Any

import redis
import redis.asyncio as aioredis
from starlette.websockets import WebSocket, WebSocketDisconnect

from edgeexec import __version__
from edgeexec import protocol as p
from edgeexec.config.settings import GatewaySettings
from edgeexec.gateway import pubsub
from edgeexec.gateway.auth import Auth, peer
from edgeexec.gateway.budget import TokenBucket
from edgeexec.gateway.control import ControlHub
from edgeexec.gateway.metrics import GatewayMetrics
from edgeexec.gateway.operators import AdminTokens
from edgeexec.gateway.session import AgentSession, close_with_error
from edgeexec.gateway.store import Assignment, GatewayStore, Registration
from edgeexec.tokens import store as token_store
from edgeexec.tokens.model import SHARED_SECRET, TokenInfo, check_hello

log = logging.getLogger(__name__)


SERVER_SEND = "edgeexec.server_send"
"""Scope key of the ASGI server's own send callable (set by app.KeepServerSend)."""
MAX_REFUSED_FRAMES = 256
"""Frames naming jobs a session does not hold, per heartbeat interval, dropped before the session
is cut off: a few are normal (logs of a job being cancelled as foreign), hundreds are a broken or
hostile agent."""


class Gateway:
    def __init__(self, settings: GatewaySettings, client: aioredis.Redis) -> None:
        self.settings = settings
        self.client = client
        self.keys = settings.keys()
        self.store = GatewayStore(client, self.keys, liveness_s=settings.liveness, job_ttl_s=settings.job_ttl)
        self.sessions: dict[str, AgentSession] = {}
        self.metrics = GatewayMetrics(settings.metrics_interval)
        self.auth = Auth(settings, client, self.keys, self.metrics)
        self.control = ControlHub(self.store, AdminTokens(self.auth, settings.team), send_timeout=settings.send_timeout)
        self._listener: asyncio.Task[None] | None = None
        self._recheck: asyncio.Task[None] | None = None
        self.versions = {"edgeexec": __version__, **_airflow_version()}

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        """Idempotent: also called lazily, because a mounted sub-app's lifespan never runs."""
        if self._listener is None or self._listener.done():
            self._listener = asyncio.create_task(self._listen(), name="gateway-pubsub")
        if self._recheck is None or self._recheck.done():
            self._recheck = asyncio.create_task(self._recheck_tokens(), name="gateway-token-recheck")

    async def stop(self) -> None:
        for task in (self._listener, self._recheck):
            if task:
                task.cancel()
        self.control.stop()
        for s in list(self.sessions.values()):
            await s.close(p.CloseCode.GOING_AWAY, "gateway shutting down; reconnect")
        await self.client.aclose()

    # ------------------------------------------------------------------ agent endpoint

    async def serve_control(self, ws: WebSocket) -> None:
        await self.start()
        await self.control.serve(ws)

    async def serve_agent(self, ws: WebSocket) -> None:
        await self.start()
        who = await self.auth.authenticate(ws.headers.get("authorization"), peer(ws))
        if not isinstance(who, tuple) and len(self.sessions) >= self.settings.max_agents:
            who = 503, f"gateway is full ({self.settings.max_agents} agents); retry later or add a gateway"
        if isinstance(who, tuple):
            await self.auth.deny(ws, who)
            return
        await ws.accept()
        session: AgentSession | None = None
        try:
            hello = await self._read_hello(ws, who)
            if hello is None:
                return
            session = await self._register(ws, hello, who)
            if session is not None:
                await self._receive_loop(session)
        except WebSocketDisconnect:
            pass
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if session is None or not session.killed or task is None:
                raise
            task.uncancel()  # cut off by its own session (slow reader): end it, not the server
        except redis.RedisError as exc:
            # Nothing is lost: the agent keeps its jobs and unacked results and resends them in
            # the hello of its next session, which reconciles against Redis once it is back.
            log.warning("Redis failed while serving agent %s: %s; closing its session with 1013",
                        session.name if session else "(before hello)", exc)
            await close_with_error(ws, p.CloseCode.TRY_AGAIN_LATER,
                                   "the gateway lost its Redis connection; reconnect shortly")
        finally:
            if session is not None:
                session.ended = True
                await session.stop()  # a queued close goes out first, if the peer takes it
                if session.killed:  # however it came to that (a full queue, a send timeout)
                    await _cut_off(ws, session)
                await self._end(session)

    async def _read_hello(self, ws: WebSocket, who: TokenInfo) -> p.Hello | None:
        try:
            msg = await asyncio.wait_for(ws.receive(), self.settings.hello_timeout)
        except TimeoutError:
            await close_with_error(ws, p.CloseCode.HELLO_TIMEOUT,
                                   f"no hello within {self.settings.hello_timeout:g} s")
            return None
        if msg["type"] == "websocket.disconnect":
            return None
        try:
            frame = p.decode(_payload(msg), allowed=frozenset({"hello"}))
            assert isinstance(frame, p.Hello)
            self.metrics.frames_in.labels(type=frame.TYPE).inc()
            p.negotiate(frame.protocols)
            check_hello(who, frame)
            _check_team(frame, self.settings.team)
            return frame
        except p.ProtocolError as exc:
            log.warning("refused hello from %s: %s", ws.client, exc)
            await close_with_error(ws, exc.code, str(exc))
            return None

    async def _register(self, ws: WebSocket, hello: p.Hello, who: TokenInfo) -> AgentSession | None:
        sid = uuid.uuid4().hex
        allowed = None if who is SHARED_SECRET else who.queues
        reg = await self.store.register(hello, sid, self.settings.gateway_id, allowed)
        if reg.conflict:
            msg = (f"agent name {hello.name!r} is already connected from another live process; "
                   "give this agent another --name or stop the other one")
            log.warning("refused agent %s: %s", hello.name, msg)
            await close_with_error(ws, p.CloseCode.NAME_IN_USE, msg)
            return None
        old = self.sessions.get(hello.name)
        session = self._session(ws, hello, sid, who, reg)
        self.metrics.sessions.inc()
        if reg.returning:
            self.metrics.reconnects.inc()
        self.sessions[hello.name] = session
        if old is not None:
            await old.close(p.CloseCode.SESSION_REPLACED, "a newer session of this agent took over")
        warnings = p.version_warnings(hello.versions, self.versions)
        for w in warnings:
            log.warning("agent %s: %s", hello.name, w)
        await session.send(p.Welcome(session=sid, protocol=p.negotiate(hello.protocols),
                                     heartbeat_interval=self.settings.heartbeat_interval,
                                     max_frame=self.settings.max_frame_bytes, warnings=warnings,
                                     maintenance=reg.maintenance, comments=reg.comments,
                                     maintenance_cleared=reg.maintenance_cleared))
        log.info("agent %s connected (queues=%s, concurrency=%d, session=%s)",
                 hello.name, ",".join(hello.queues), hello.concurrency, sid[:8])
        for job in reg.foreign:
            await session.send(p.Cancel(job=job, reason="this job is no longer assigned to this agent"))
        for job, reason in reg.cancels:
            await session.send(p.Cancel(job=job, reason=reason))
        await self._push(session, reg.claimed)
        return session

    def _session(self, ws: WebSocket, hello: p.Hello, sid: str, who: TokenInfo, reg: Registration) -> AgentSession:
        s = self.settings
        session = AgentSession(ws, hello.name, sid, hello.concurrency, token_id=who.id, metrics=self.metrics,
                               send_timeout=s.send_timeout, frames=TokenBucket(s.max_frames_per_second),
                               log_bytes=TokenBucket(s.max_log_bytes_per_second), held=set(reg.held))
        session.start()
        return session

    async def _end(self, session: AgentSession) -> None:
        if self.sessions.get(session.name) is session:
            del self.sessions[session.name]
        try:
            await self.store.disconnect(session.name, session.session, clean=session.clean,
                                       grace_s=self.settings.heartbeat_interval)
        except Exception:
            log.exception("could not record the disconnect of agent %s; the reaper will", session.name)
        log.info("agent %s disconnected%s", session.name, " (bye)" if session.clean else "")

    async def _receive_loop(self, s: AgentSession) -> None:
        """Frames until the agent leaves. Silence longer than the liveness window ends the session
        (the only keepalive a gateway mounted in another server can rely on), and the frame size
        limit holds whichever server runs the app."""
        while not s.closing:
            try:
                async with asyncio.timeout(self.settings.liveness):
                    msg = await s.ws.receive()
            except TimeoutError:
                await s.close(p.CloseCode.SILENT, f"no frame for {self.settings.liveness:g} s; reconnect")
                return
            if msg["type"] == "websocket.disconnect":
                return
            frame = await self._decode(s, msg)
            if frame is None:
                return
            log.debug("< %s %s", s.name, frame.TYPE)
            self.metrics.frames_in.labels(type=frame.TYPE).inc()
            if isinstance(frame, p.Bye):
                s.clean = True
                return
            await self._handle(s, frame)

    async def _decode(self, s: AgentSession, msg: Mapping[str, Any]) -> p.Frame | None:
        """The frame, or None once the session is being closed for it (bad, too big, over budget)."""
        try:
            data = _payload(msg)
            if len(data) > self.settings.max_frame_bytes:
                raise p.ProtocolError(f"frame of {len(data)} bytes exceeds max_frame_bytes="
                                      f"{self.settings.max_frame_bytes}", p.CloseCode.MESSAGE_TOO_BIG)
            frame = p.decode(data, allowed=p.AGENT_FRAMES)
        except p.ProtocolError as exc:
            log.warning("agent %s sent a bad frame: %s", s.name, exc)
            await s.close(exc.code, str(exc))
            return None
        exceeded = s.over_budget(len(frame.raw) if isinstance(frame, p.LogChunk) else 0)
        if exceeded is not None:
            self.metrics.cut_off.labels(code=str(int(p.CloseCode.OVER_BUDGET))).inc()
            log.warning("agent %s sent %s; closing its session", s.name, exceeded)
            await s.close(p.CloseCode.OVER_BUDGET, f"this agent sent {exceeded}; reconnect later")
            return None
        return frame

    async def _handle(self, s: AgentSession, frame: p.Frame) -> None:
        if isinstance(frame, p.Heartbeat | p.AgentStatus):
            await self._heartbeat(s, frame)
        elif isinstance(frame, JobFrame) and not _holds(s, frame):
            await self._refuse(s, frame)
        elif isinstance(frame, p.Accepted):
            await self._accepted(s, frame.job)
        elif isinstance(frame, p.Rejected):
            s.settle(frame.job)
            # %r: the reason is the agent's text, and a newline in it must not forge a log line
            log.info("agent %s refused job %s: %r", s.name, frame.job, frame.reason)
            await self.store.reject(s.name, frame.job)
        elif isinstance(frame, p.StateReport):
            await self._state(s, frame)
        elif isinstance(frame, p.LogChunk) and not await self.store.append_log(s.name, frame.job, frame.offset,
                                                                                frame.raw):
            s.held.discard(frame.job)  # re-placed or finished meanwhile: no longer this agent's
            self.metrics.refused_frames.labels(reason="log-not-assigned").inc()

    async def _heartbeat(self, s: AgentSession, frame: p.Heartbeat | p.AgentStatus) -> None:
        metrics = frame.metrics if isinstance(frame, p.Heartbeat) else None
        comments = frame.comments if isinstance(frame, p.AgentStatus) else None
        s.refused = 0  # the refusal limit is per heartbeat interval: a few stray frames never add up
        beat = await self.store.heartbeat(s.name, s.session, frame.state, comments, metrics)
        if not beat.current:
            await s.close(p.CloseCode.SESSION_REPLACED, "this session is no longer current; reconnect")
            return
        await self._push(s, beat.claimed)
        await self._push(s, [a for a in beat.waiting if a.job not in s.sent])
        for job, reason in beat.cancels:  # re-sent until the agent reports the job finished
            await s.send(p.Cancel(job=job, reason=reason))

    async def _refuse(self, s: AgentSession, frame: JobFrame) -> None:
        """A frame about a job this session does not hold: nothing is written for it."""
        self.metrics.refused_frames.labels(reason=f"{frame.TYPE}-not-held").inc()
        s.refused += 1
        if s.refused > MAX_REFUSED_FRAMES:
            await s.close(p.CloseCode.NOT_YOURS, f"more than {MAX_REFUSED_FRAMES} frames named jobs this session "
                                                 "does not hold; fix or restart the agent")
        elif isinstance(frame, p.StateReport) and frame.state.terminal:
            await s.send(p.Ack(job=frame.job, state=frame.state))  # not ours to record: let the agent forget it
        elif isinstance(frame, p.Accepted):
            await s.send(p.Cancel(job=frame.job, reason="this job was not offered to this session"))

    async def _accepted(self, s: AgentSession, job: str) -> None:
        """A claim: the agent starts the process only on ``start``, which Redis has just agreed to."""
        result = await self.store.accept(s.name, job)
        if result == "ok":
            s.held.add(job)
            await s.send(p.Start(job=job))
        else:
            s.settle(job)
            await s.send(p.Cancel(job=job, reason=f"job is {result} on this gateway's records"))

    async def _state(self, s: AgentSession, frame: p.StateReport) -> None:
        if frame.state is p.JobState.RUNNING:
            await self._accepted(s, frame.job)
            return
        status, claimed = await self.store.finish(s.name, frame.job, frame.state, frame.reason,
                                                  frame.exit_code, s.concurrency)
        if status == "foreign":
            log.warning("agent %s reported job %s that is not assigned to it; ignored", s.name, frame.job)
        s.settle(frame.job)
        await s.send(p.Ack(job=frame.job, state=frame.state))
        await self._push(s, claimed)

    async def _push(self, s: AgentSession, jobs: Iterable[Assignment]) -> None:
        for a in jobs:
            s.sent.add(a.job)
            if not await s.send(p.Run(job=a.job, workload=a.workload, slots=a.slots)):
                return
            self.metrics.dispatched(a.enqueued_ms)

    # ------------------------------------------------------------------ pub/sub from schedulers

    async def _listen(self) -> None:
        channel = self.keys.gateway_channel(self.settings.gateway_id)
        revoked = token_store.revoked_channel(self.keys)

        async def handle(chan: str, data: str) -> None:
            await (self._on_revoked(data) if chan == revoked else self._on_notice(data))

        await pubsub.listen(self.client, [channel, revoked], handle)

    async def _on_revoked(self, tid: str) -> None:
        await self._drop_tokens({tid}, "revoked")

    async def _drop_tokens(self, tids: set[str], why: str) -> None:
        """End every agent and control session holding one of ``tids``."""
        for s in [s for s in self.sessions.values() if s.token_id in tids]:
            log.warning("token %s was %s: disconnecting agent %s", s.token_id, why, s.name)
            await s.close(p.CloseCode.FORBIDDEN, f"this agent's token was {why}")
        await self.control.drop_tokens(tids, why)

    async def _recheck_tokens(self) -> None:
        """Re-validate the tokens of open sessions: a revocation notice lost while this gateway was
        resubscribing, or a token that expired mid-session, ends its sessions within one interval."""
        while True:
            await asyncio.sleep(self.settings.token_recheck_interval)
            tids = {s.token_id for s in self.sessions.values()} | self.control.token_ids()
            tids.discard(SHARED_SECRET.id)
            if not tids:
                continue
            try:
                dead = await token_store.dead(self.client, self.keys, tids)
            except Exception:
                log.exception("could not re-validate %d session token(s); retrying", len(tids))
                continue
            if dead:
                await self._drop_tokens(dead, "revoked or expired")

    async def _on_notice(self, data: str) -> None:
        kind, _, rest = data.partition("\t")
        name, _, rest = rest.partition("\t")
        session = self.sessions.get(name)
        if session is None:
            return
        if kind == "run":
            assignment = await self.store.assigned_workload(name, rest)
            if assignment and assignment.job not in session.sent:
                await self._push(session, [assignment])
        elif kind == "cancel":
            job, _, reason = rest.partition("\t")
            await session.send(p.Cancel(job=job, reason=reason))
        elif kind == "cmd":
            frame = p.decode(rest, allowed=frozenset({"command"}))
            log.info("operator command for agent %s: %s", name, frame)
            await session.send(frame)
        else:
            log.warning("unknown notice on the gateway channel: %r", data[:80])


JobFrame = p.Accepted | p.Rejected | p.StateReport | p.LogChunk


def _holds(s: AgentSession, frame: JobFrame) -> bool:
    """May this session speak about the frame's job? Logs need a job started here; claims,
    rejections and reports a job pushed to or confirmed for this session."""
    return frame.job in s.held if isinstance(frame, p.LogChunk) else s.owns(frame.job)


async def _cut_off(ws: WebSocket, session: AgentSession) -> None:
    """Close a session the gateway gave up on, without waiting on its peer: a close frame if it
    goes out within 2 s, then the TCP connection is aborted. (A server closes a connection by
    flushing its buffer first, which never ends for a peer that does not read: its socket and
    buffers would stay forever.)"""
    try:
        async with asyncio.timeout(2):
            await close_with_error(ws, session.kill_code, session.kill_reason)
    except TimeoutError:
        log.info("agent %s did not take its close frame", session.name)
    _abort(ws)


def _abort(ws: WebSocket) -> None:
    """Abort the connection under ``ws`` if the ASGI server exposes it (uvicorn's send is a method
    of its protocol object, which holds the transport); otherwise the server's own timeouts apply."""
    protocol = getattr(ws.scope.get(SERVER_SEND), "__self__", None)
    transport = getattr(protocol, "transport", None)
    if transport is not None and hasattr(transport, "abort"):
        transport.abort()


def _payload(msg: Mapping[str, Any]) -> bytes | str:
    data = msg.get("text")
    if data is None:
        data = msg.get("bytes")
    if not isinstance(data, bytes | str):
        raise p.ProtocolError("empty WebSocket message")
    return data


def _airflow_version() -> dict[str, str]:
    try:
        from importlib.metadata import version

        return {"airflow": version("apache-airflow-core")}
    except Exception:  # noqa: BLE001 - a gateway does not need Airflow installed
        return {}


def _check_team(hello: p.Hello, team: str) -> None:
    """A gateway serves one team's fleet (its keyspace): an agent of another team is refused, never
    registered where it would serve that team's jobs."""
    if hello.team != team:
        ours = f"team {team!r}" if team else "no team"
        theirs = f"team {hello.team!r}" if hello.team else "no team"
        raise p.ProtocolError(f"this gateway serves {ours}, but the agent was started for {theirs}: connect it to "
                              f"its team's gateway, or fix --team / AIRFLOW__EDGEEXEC__TEAM", p.CloseCode.FORBIDDEN)
