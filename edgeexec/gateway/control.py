"""The control/status endpoint (`/ws/control`): admin clients watch the fleet and command agents.

Client -> gateway (JSON text frames):

* ``{"type": "subscribe"}`` -> a ``snapshot`` (agents, queues), then ``agent`` and ``queues`` deltas
  as they change (no polling on either side);
* ``{"type": "command", "agent": NAME | "*", "action": ..., "comments": ..., "queues": [...],
  "concurrency": N, "id": any}`` -> one ``result`` frame ``{ok, message, id}``.

A command for an agent connected to another gateway is routed through Redis pub/sub. Maintenance
for an offline agent is written to its record (``mop``, the operator's intent) and takes effect
when it reconnects, whatever state the agent still reports. ``set_queues`` is refused here when
the agent's token does not allow the queues, so the agent is never told to register with them.
Who may watch and who may command comes from an ``Operators`` source (operators.py): admin
tokens on a gateway, Airflow's auth manager on the page inside Airflow's UI. A session whose
operator may only watch is refused every command; one whose credential is revoked or expires
is closed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

import orjson
from starlette.websockets import WebSocket, WebSocketDisconnect

from edgeexec import protocol as p
from edgeexec.gateway import pubsub, status
from edgeexec.gateway.operators import Operator, Operators
from edgeexec.gateway.store import GatewayStore

log = logging.getLogger(__name__)
QUEUE_REFRESH_S = 2.0
SUBPROTOCOL = "edgeexec"


class ControlHub:
    """Built from what it needs: the gateway store (reads of the fleet, every write), who its
    operators are, and how long a send to one client may take."""

    def __init__(self, store: GatewayStore, operators: Operators, *, send_timeout: float) -> None:
        self.store, self.operators, self.send_timeout = store, operators, send_timeout
        self.client, self.keys = store.client, store.keys
        self.clients: dict[WebSocket, asyncio.Lock] = {}
        self.sessions: dict[WebSocket, Operator] = {}
        self._last_queues: dict[str, Any] = {}
        self._task: asyncio.Task[None] | None = None
        self._status: asyncio.Task[None] | None = None
        self._subscribed = asyncio.Event()

    async def serve(self, ws: WebSocket, who: Operator | None = None) -> None:
        """One control session; ``who``: already identified by the caller (who picked this hub for
        the operator's team), else identified here."""
        found = who or await self.operators.identify(ws)
        if isinstance(found, tuple):
            await self.operators.deny(ws, found)
            return
        who = found
        await ws.accept(subprotocol=SUBPROTOCOL if SUBPROTOCOL in ws.scope.get("subprotocols", []) else None)
        self.clients[ws] = asyncio.Lock()
        self.sessions[ws] = who
        watch = asyncio.create_task(self._recheck(ws), name="control-recheck")
        try:
            while True:
                await self._handle(ws, await ws.receive_text())
        except (WebSocketDisconnect, RuntimeError):
            pass
        finally:
            watch.cancel()
            self.clients.pop(ws, None)
            self.sessions.pop(ws, None)
            if not self.clients and self._status is not None:
                # nobody watches: stop receiving a message per heartbeat of the whole fleet
                self._status.cancel()
                self._status = None

    async def _handle(self, ws: WebSocket, raw: str) -> None:
        try:
            msg = orjson.loads(raw)
            if not isinstance(msg, dict):
                raise ValueError("a control frame is a JSON object")
        except ValueError as exc:
            await self._send(ws, p.control_error(f"not a JSON object: {exc}"))
            return
        if msg.get("type") == "subscribe":
            await self._watch_status()
            await self._send_snapshot(ws)
            self._ensure_queue_loop()
        elif msg.get("type") == "command":
            who = self.sessions.get(ws)
            if who is None or not who.manage:
                read_only = who.read_only if who else "the session has ended"
                log.warning("refused a command from read-only operator %s: %s", who and who.name, read_only)
                await self._send(ws, p.command_result(False, read_only, msg.get("id")))
                return
            log.info("operator %s: %r for %r", who.name, msg.get("action"), msg.get("agent"))
            ok, message = await self.command(msg)
            await self._send(ws, p.command_result(ok, message, msg.get("id")))
        else:
            await self._send(ws, p.control_error('use {"type": "subscribe"} or {"type": "command", ...}'))

    def token_ids(self) -> set[str]:
        return {who.id for who in self.sessions.values()}

    async def drop_tokens(self, tids: set[str], why: str) -> None:
        for ws in [ws for ws, who in self.sessions.items() if who.id in tids]:
            await self._end(ws, f"admin token {why}")

    async def _end(self, ws: WebSocket, why: str) -> None:
        who = self.sessions.pop(ws, None)
        log.warning("closing the control session of %s: %s", who.name if who else "?", why)
        self.clients.pop(ws, None)
        with contextlib.suppress(Exception):
            async with asyncio.timeout(2):
                await ws.close(code=p.CloseCode.FORBIDDEN, reason=why[:120])

    async def _recheck(self, ws: WebSocket) -> None:
        """Ends a session when its credential expires, and (if the source asks for it) asks it
        again now and then whether the operator still may watch, and may still command."""
        interval = self.operators.recheck_interval
        while (who := self.sessions.get(ws)) is not None:
            left = who.expires_at - time.time() if who.expires_at is not None else None
            if left is not None and left <= 0:
                await self._end(ws, "session expired: reload the page to sign in again")
                return
            if interval is None and left is None:
                return
            await asyncio.sleep(min(x for x in (interval, left) if x is not None))
            if interval is None or ws not in self.sessions:
                continue
            try:
                now = await self.operators.recheck(ws, who)
            except Exception:
                log.exception("could not recheck the control session of %s", who.name)
                now = "could not recheck the session's permissions: reload the page"
            if isinstance(now, str):
                await self._end(ws, now)
                return
            if now != who and ws in self.sessions:  # not if the session ended meanwhile
                self.sessions[ws] = now
                await self._send(ws, p.session_info(now.describe()))

    # ------------------------------------------------------------------ commands

    async def command(self, msg: dict[str, Any]) -> tuple[bool, str]:
        try:
            frame = p.Command.from_dict({**msg, "type": "command"})
        except p.ProtocolError as exc:
            return False, str(exc)
        target = msg.get("agent")
        if not isinstance(target, str) or not target:
            return False, "name the agent: \"agent\": NAME, or \"*\" for every agent"
        if target == "*" and not p.ACTIONS[p.Action(frame.action)].agent:
            return False, f"{frame.action} takes one agent's name, not \"*\""
        members: Any = await self.client.smembers(self.keys.agents) if target == "*" else [target]
        names: list[str] = sorted(members)
        results = [await self._command_one(n, frame, every=target == "*") for n in names]
        failed = [m for ok, m in results if not ok]
        if not names:
            return False, "no agents are known"
        return not failed, "; ".join(m for _, m in results)

    async def _command_one(self, name: str, frame: p.Command, *, every: bool = False) -> tuple[bool, str]:
        """One agent's command; with ``every`` (target "*"), an offline agent a command cannot reach
        is skipped rather than failed: "shut down every agent" is done when every running one is."""
        route = await self.store.command_route(name)
        if route is None:
            return False, f"no agent named {name!r} is known; see `agent status`"
        refused = _queues_refused(frame, route.token_queues)
        if refused:
            return False, refused
        rule = p.ACTIONS[p.Action(frame.action)]
        if not rule.agent:
            return await self._remove(name)
        offline_ok = rule.offline
        if route.gateway:
            if await self.store.send_command(name, route.gateway, frame, supersedes_intent=offline_ok):
                return True, f"{frame.action} sent to {name}"
            return False, (f"agent {name!r} is recorded on gateway {route.gateway}, which is not listening; the command "
                           "was not delivered: retry once the agent has reconnected")
        if offline_ok:
            await self.store.record_maintenance_intent(name, frame.action == p.Action.MAINTENANCE_ON, frame.comments)
            return True, f"{name} is offline: recorded, it applies when the agent reconnects"
        if every:
            return True, f"{name} is offline: skipped"
        return False, f"agent {name!r} is offline; {frame.action} needs a connected agent"

    async def _remove(self, name: str) -> tuple[bool, str]:
        outcome = await self.store.forget(name)
        if outcome == "forgotten":
            log.info("operator removed the record of offline agent %r", name)  # watchers hear it in on_status
            return True, (f"removed agent {name} (it was offline); its token still admits it: revoke the token "
                          "(`edgeexec token list`, `edgeexec token revoke ID`) if the host is gone for good")
        if outcome == "connected":
            return False, f"agent {name!r} is connected; stop it first (drain or shutdown), then remove it"
        if outcome == "busy":
            return False, (f"agent {name!r} still holds jobs; they are failed or returned once it is declared lost "
                           "(liveness timeout): remove it after that")
        return False, f"no agent named {name!r} is known; see `agent status`"

    # ------------------------------------------------------------------ status stream

    def stop(self) -> None:
        for task in (self._task, self._status):
            if task is not None:
                task.cancel()

    async def _watch_status(self) -> None:
        """Subscribe to the fleet's status channel while someone watches, and before the snapshot."""
        if self._status is None or self._status.done():
            self._subscribed.clear()

            async def handle(_: str, name: str) -> None:
                await self.on_status(name)

            self._status = asyncio.create_task(
                pubsub.listen(self.client, [self.keys.status_channel], handle, self._subscribed),
                name="control-status")
        try:
            await asyncio.wait_for(self._subscribed.wait(), 10)
        except TimeoutError:
            log.warning("status subscription not live after 10 s; the snapshot may miss changes")

    async def on_status(self, name: str) -> None:
        if not self.clients:
            return
        recs = await status.agents(self.client, self.keys, [name])
        # no record: an operator removed it (on whichever gateway); every watcher drops it
        await self._broadcast(p.agent_delta(recs[0]) if recs else p.removed_agent(name))

    def _ensure_queue_loop(self) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._queue_loop(), name="control-queues")

    async def _queue_loop(self) -> None:
        while self.clients:
            try:
                fleet = await status.agents(self.client, self.keys)
                queues = await status.queues(self.client, self.keys, fleet)
                if queues != self._last_queues:
                    self._last_queues = queues
                    await self._broadcast(p.queues_delta(queues))
            except Exception:
                log.exception("could not refresh queue figures for status clients")
            await asyncio.sleep(QUEUE_REFRESH_S)

    async def _broadcast(self, msg: dict[str, Any]) -> None:
        for ws in list(self.clients):
            await self._send(ws, msg)

    async def _send_snapshot(self, ws: WebSocket) -> None:
        """Read and send the snapshot under the client's lock: a delta broadcast meanwhile waits and
        follows it. (Sent before it, the client would drop it, and the snapshot could predate it.)"""
        lock = self.clients.get(ws)
        if lock is None:
            return
        async with lock:
            fleet = await status.agents(self.client, self.keys)
            who = self.sessions.get(ws)
            await self._send_now(ws, p.snapshot(fleet, await status.queues(self.client, self.keys, fleet),
                                                who.describe() if who else None))

    async def _send(self, ws: WebSocket, msg: dict[str, Any]) -> None:
        lock = self.clients.get(ws)
        if lock is None:
            await self._send_now(ws, msg)
            return
        async with lock:
            await self._send_now(ws, msg)

    async def _send_now(self, ws: WebSocket, msg: dict[str, Any]) -> None:
        """One frame to one client, bounded in time: a dashboard that stops reading is dropped
        instead of stalling the status stream of every other client."""
        try:
            async with asyncio.timeout(self.send_timeout):
                await ws.send_text(orjson.dumps(msg).decode())
        except Exception as exc:  # noqa: BLE001 - a gone client is simply dropped
            log.debug("dropping status client: %s", exc)
            self.clients.pop(ws, None)
            self.sessions.pop(ws, None)
            with contextlib.suppress(Exception):
                async with asyncio.timeout(2):  # a client that does not read never takes the close
                    await ws.close()


def _queues_refused(frame: p.Command, tokq: str | None) -> str:
    """Why ``set_queues`` cannot go to this agent ('' if it can): its token must allow every queue."""
    if frame.action != "set_queues" or not tokq:
        return ""
    allowed = set(orjson.loads(tokq))
    extra = [q for q in frame.queues if q not in allowed]
    if not extra:
        return ""
    return (f"queue(s) {', '.join(extra)} are not allowed by this agent's token (allowed: "
            f"{', '.join(sorted(allowed))}); create a token with those queues and restart the agent with it")
