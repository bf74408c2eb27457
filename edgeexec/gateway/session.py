"""One agent's WebSocket session on this gateway: a bounded send queue, what it holds, its budgets.

Nothing that serves *other* agents ever waits on this agent's socket: frames are queued
(``send`` never blocks) and one writer task per session drains the queue with a timeout per
frame. An agent that stops reading fills its queue or times a send out, and only its own session
is cut off (``SLOW_READER``); the pub/sub listener and every other session carry on.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass, field

from starlette.websockets import WebSocket, WebSocketState

from edgeexec.gateway.budget import TokenBucket
from edgeexec.gateway.metrics import GatewayMetrics
from edgeexec.protocol import FATAL_CLOSE_CODES, CloseCode, Error, Frame, encode

log = logging.getLogger(__name__)
MAX_CLOSE_REASON = 120
CLOSE_WAIT_S = 5.0
_Close = tuple[int, str]


@dataclass(eq=False)
class AgentSession:
    ws: WebSocket
    name: str
    session: str
    concurrency: int
    token_id: str = ""
    metrics: GatewayMetrics | None = None
    send_timeout: float = 20.0
    frames: TokenBucket = field(default_factory=lambda: TokenBucket(0))
    log_bytes: TokenBucket = field(default_factory=lambda: TokenBucket(0))
    sent: set[str] = field(default_factory=set)
    """Jobs pushed as ``run`` in this session and not yet settled."""
    held: set[str] = field(default_factory=set)
    """Jobs Redis says belong to this agent (pushed, or reported running and confirmed at hello)."""
    clean: bool = False
    closing: bool = False
    killed: bool = False
    """Set by :meth:`kill`: the reading task's CancelledError is ours, not a shutdown's."""
    kill_code: int = 0
    kill_reason: str = ""
    ended: bool = False
    """The reading task reached its cleanup: a kill must not cancel it any more (it records the
    disconnect in Redis, which a cancellation would cut short)."""
    refused: int = 0
    _queue: asyncio.Queue[str | _Close] = field(init=False)
    _writer: asyncio.Task[None] | None = None
    _owner: asyncio.Task[object] | None = None

    def __post_init__(self) -> None:
        self._queue = asyncio.Queue(maxsize=256 + 4 * self.concurrency)

    def start(self) -> None:
        """Start the writer; the current task (the one reading the socket) is cut off on a kill."""
        self._owner = asyncio.current_task()
        self._writer = asyncio.get_running_loop().create_task(self._write(), name=f"send-{self.name}")

    def owns(self, job: str) -> bool:
        return job in self.held or job in self.sent

    def settle(self, job: str) -> None:
        self.sent.discard(job)
        self.held.discard(job)

    async def send(self, frame: Frame) -> bool:
        """Queue one frame; False if the session is ending (the caller keeps state in Redis)."""
        if self.closing or self.ws.client_state != WebSocketState.CONNECTED:
            return False
        try:
            self._queue.put_nowait(encode(frame).decode())
        except asyncio.QueueFull:
            self.kill(CloseCode.SLOW_READER, f"agent {self.name} is not reading its socket "
                                             f"({self._queue.maxsize} frames waiting); cutting it off")
            return False
        if self.metrics is not None:
            self.metrics.frames_out.labels(type=frame.TYPE).inc()
        return True

    async def close(self, code: int, reason: str) -> None:
        """Close after the frames already queued, with an ``error`` frame saying why."""
        if self.closing:
            return
        self.closing = True
        try:
            self._queue.put_nowait((code, reason))
        except asyncio.QueueFull:
            self.kill(code, reason)
        if self._writer is None:  # never started: close directly
            await close_with_error(self.ws, code, reason)

    def kill(self, code: int, reason: str) -> None:
        """End the session now, without waiting on its socket: the reading task is cancelled."""
        if self.killed:
            return
        self.closing = self.killed = True
        self.kill_code, self.kill_reason = code, reason
        log.warning("agent %s: %s (close %d)", self.name, reason, code)
        if self.metrics is not None:
            self.metrics.cut_off.labels(code=str(code)).inc()
        owner = self._owner
        # From the reading task itself (a send that found the queue full) there is nothing to
        # cancel: it sees ``closing`` and returns. From any other task, it may be blocked reading.
        if owner is not None and not owner.done() and owner is not asyncio.current_task() and not self.ended:
            owner.cancel()
        if self._writer is not None:
            self._writer.cancel()

    async def stop(self) -> None:
        """The session is over: let a queued close go out (bounded in time), then stop the writer."""
        writer = self._writer
        if writer is None or writer.done():
            return
        if self.closing and not self.killed:
            with contextlib.suppress(TimeoutError, asyncio.CancelledError):
                await asyncio.wait_for(asyncio.shield(writer), min(self.send_timeout, CLOSE_WAIT_S))
        writer.cancel()

    async def _write(self) -> None:
        while True:
            item = await self._queue.get()
            try:
                async with asyncio.timeout(self.send_timeout):
                    if isinstance(item, tuple):
                        await close_with_error(self.ws, *item)
                        return
                    await self.ws.send_text(item)
            except TimeoutError:
                self.kill(CloseCode.SLOW_READER, f"a frame to agent {self.name} took longer than "
                                                 f"{self.send_timeout:g} s to send")
                return
            except Exception as exc:  # noqa: BLE001 - any socket failure ends the session the same way
                log.info("send to agent %s failed (%s); its session is ending", self.name, exc)
                self.kill(CloseCode.GOING_AWAY, "send failed")
                return

    def over_budget(self, log_bytes: int = 0) -> str | None:
        """Charge one frame (and its log bytes); the budget exceeded, if any."""
        now = time.monotonic()
        if not self.frames.spend(1, now):
            return f"more than {self.frames.rate:g} frames per second"
        if log_bytes and not self.log_bytes.spend(log_bytes, now):
            return f"more than {self.log_bytes.rate:g} log bytes per second"
        return None


async def close_with_error(ws: WebSocket, code: int, message: str) -> None:
    """Tell the peer why in an ``error`` frame, then close with a documented code."""
    if ws.client_state != WebSocketState.CONNECTED:
        return
    try:
        if code >= 4000 or code in (CloseCode.GOING_AWAY, CloseCode.TRY_AGAIN_LATER):
            await ws.send_text(encode(Error(code=code, message=message, retry=code not in FATAL_CLOSE_CODES)).decode())
        await ws.close(code=code, reason=message.encode()[:MAX_CLOSE_REASON].decode(errors="ignore"))
    except Exception as exc:  # noqa: BLE001 - the peer may already be gone; nothing left to tell it
        log.debug("closing a session failed: %s", exc)
