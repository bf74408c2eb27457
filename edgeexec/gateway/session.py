"""One agent's WebSocket session on this gateway: serialised sends and what was pushed."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field

from starlette.websockets import WebSocket, WebSocketState

from edgeexec.gateway.metrics import GatewayMetrics
from edgeexec.protocol import CloseCode, Error, Frame, encode

log = logging.getLogger(__name__)
MAX_CLOSE_REASON = 120


@dataclass(eq=False)
class AgentSession:
    ws: WebSocket
    name: str
    session: str
    concurrency: int
    token_id: str = ""
    metrics: GatewayMetrics | None = None
    sent: set[str] = field(default_factory=set)
    clean: bool = False
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    async def send(self, frame: Frame) -> bool:
        """Send one frame; False if the socket is already gone (the caller keeps state in Redis)."""
        if self.ws.client_state != WebSocketState.CONNECTED:
            return False
        try:
            async with self._lock:
                await self.ws.send_text(encode(frame).decode())
            log.debug("> %s %s", self.name, frame.TYPE)
            if self.metrics is not None:
                self.metrics.frames_out.labels(type=frame.TYPE).inc()
            return True
        except Exception as exc:  # noqa: BLE001 - any socket failure ends the session the same way
            log.info("send to agent %s failed (%s); its session is ending", self.name, exc)
            return False

    async def close(self, code: int, reason: str) -> None:
        await close_with_error(self.ws, code, reason)


async def close_with_error(ws: WebSocket, code: int, message: str) -> None:
    """Tell the peer why in an ``error`` frame, then close with a documented code."""
    if ws.client_state != WebSocketState.CONNECTED:
        return
    try:
        if code >= 4000 or code in (CloseCode.GOING_AWAY, CloseCode.TRY_AGAIN_LATER):
            retry = code in (CloseCode.GOING_AWAY, CloseCode.TRY_AGAIN_LATER, CloseCode.NAME_IN_USE,
                             CloseCode.HELLO_TIMEOUT)
            await ws.send_text(encode(Error(code=code, message=message, retry=retry)).decode())
        await ws.close(code=code, reason=message.encode()[:MAX_CLOSE_REASON].decode(errors="ignore"))
    except Exception as exc:  # noqa: BLE001 - the peer may already be gone; nothing left to tell it
        log.debug("closing a session failed: %s", exc)
