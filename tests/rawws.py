"""A minimal WebSocket client over a plain TCP socket, for hostile-agent tests.

A library client reads its socket, answers pings and refuses to send what the protocol forbids;
a hostile agent does none of that. This one sends exactly the bytes a test asks for and reads
only when the test asks it to, so "never reads its socket" is literally true.
"""

from __future__ import annotations

import asyncio
import base64
import os
import socket
import struct


class RawWebSocket:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def connect(cls, port: int, token: str, path: str = "/ws/agent",
                      rcvbuf: int | None = None) -> RawWebSocket:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf is not None:  # a small receive buffer: a reader that stops reading fills it fast
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        sock.setblocking(False)
        await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", port))
        # a small buffer: asyncio stops reading the socket once it holds this much unread
        reader, writer = await asyncio.open_connection(sock=sock, limit=1 << 16)
        key = base64.b64encode(os.urandom(16)).decode()
        writer.write((f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
                      f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
                      f"Authorization: Bearer {token}\r\n\r\n").encode())
        await writer.drain()
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
        if b" 101 " not in head.split(b"\r\n", 1)[0]:
            raise ConnectionRefusedError(head.decode(errors="replace"))
        return cls(reader, writer)

    async def send(self, payload: bytes | str, opcode: int = 0x1) -> None:
        data = payload.encode() if isinstance(payload, str) else payload
        mask = os.urandom(4)
        n = len(data)
        if n < 126:
            head = struct.pack("!BB", 0x80 | opcode, 0x80 | n)
        elif n < 1 << 16:
            head = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, n)
        else:
            head = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, n)
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(data)) if n < 1 << 16 else _mask_fast(data, mask)
        self.writer.write(head + mask + masked)
        await self.writer.drain()

    async def recv(self, timeout: float = 10) -> tuple[int, bytes]:
        """(opcode, payload) of the next frame from the gateway."""
        b1, b2 = await asyncio.wait_for(self.reader.readexactly(2), timeout)
        n = b2 & 0x7F
        if n == 126:
            (n,) = struct.unpack("!H", await self.reader.readexactly(2))
        elif n == 127:
            (n,) = struct.unpack("!Q", await self.reader.readexactly(8))
        return b1 & 0x0F, await asyncio.wait_for(self.reader.readexactly(n), timeout)

    async def close_code(self, timeout: float = 30) -> int | None:
        """Read until the gateway's close frame; its code (None if the connection just dropped)."""
        try:
            while True:
                opcode, payload = await self.recv(timeout)
                if opcode == 0x8:
                    return struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else None
        except (asyncio.IncompleteReadError, ConnectionError):
            return None

    def abort(self) -> None:
        self.writer.transport.abort()


def _mask_fast(data: bytes, mask: bytes) -> bytes:
    n = len(data)
    key = int.from_bytes((mask * (n // 4 + 1))[:n], "big")
    return (int.from_bytes(data, "big") ^ key).to_bytes(n, "big")
