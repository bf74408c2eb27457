"""Client of the gateway's control endpoint, used by the operator commands of the `agent` CLI."""

from __future__ import annotations

import itertools
import ssl
from collections.abc import AsyncIterator
from types import TracebackType
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import orjson
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import InvalidStatus

from agent.errors import FatalConnectError
from edgeexec import protocol as p

CONTROL_PATH = "/ws/control"


def control_url(url: str) -> str:
    """The control endpoint of the gateway an agent URL (or a bare gateway URL) points at."""
    parts = urlsplit(url)
    scheme = {"http": "ws", "https": "wss"}.get(parts.scheme, parts.scheme)
    return urlunsplit((scheme, parts.netloc, CONTROL_PATH, "", ""))


class ControlClient:
    def __init__(self, url: str, token: str, ca_file: str = "") -> None:
        self.url, self.token = control_url(url), token
        self.ssl = ssl.create_default_context(cafile=ca_file or None) if self.url.startswith("wss://") else None
        self.ws: ClientConnection | None = None
        self._ids = itertools.count(1)

    async def __aenter__(self) -> ControlClient:
        try:
            self.ws = await connect(self.url, additional_headers={"Authorization": f"Bearer {self.token}"},
                                    max_size=None, open_timeout=15, ssl=self.ssl)
        except InvalidStatus as exc:
            body = exc.response.body.decode(errors="replace") if exc.response.body else ""
            raise FatalConnectError(f"{self.url} refused: HTTP {exc.response.status_code} {body}") from None
        return self

    async def __aexit__(self, *exc: tuple[type[BaseException], BaseException, TracebackType] | Any) -> None:
        if self.ws is not None:
            await self.ws.close()

    async def _send(self, msg: dict[str, Any]) -> None:
        assert self.ws is not None
        await self.ws.send(orjson.dumps(msg).decode())

    async def _recv(self) -> dict[str, Any]:
        assert self.ws is not None
        msg: dict[str, Any] = orjson.loads(await self.ws.recv())
        return msg

    async def command(self, agent: str, action: str, **fields: Any) -> tuple[bool, str]:
        req = next(self._ids)
        await self._send(p.control_command(agent, action, req, **fields))
        while True:
            msg = await self._recv()
            if msg.get("type") == "result" and msg.get("id") == req:
                return bool(msg["ok"]), str(msg["message"])
            if msg.get("type") == "error":
                return False, str(msg.get("message"))

    async def stream(self) -> AsyncIterator[dict[str, Any]]:
        """The snapshot, then every delta, as they come. Deltas the gateway broadcast before it
        sent our snapshot are dropped: the snapshot already holds what they changed."""
        await self._send(p.subscribe())
        msg = await self._recv()
        while msg.get("type") != "snapshot":
            msg = await self._recv()
        yield msg
        while True:
            yield await self._recv()
