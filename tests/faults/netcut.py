"""A TCP proxy on loopback that can cut the network between an agent and its gateway.

``cut()`` stops moving bytes in both directions while every connection stays open, as a pulled
cable or a dead route looks to both ends: nothing is closed, nothing arrives. New connections are
accepted and then hang the same way. ``restore()`` moves bytes again; connections that one end
gave up on during the cut are closed on the other end too, as TCP would after its retries.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading

from edgeexec.localstack.processes import free_port


class NetCut:
    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.port = free_port()
        self.loop = asyncio.new_event_loop()
        self._open: asyncio.Event | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name="netcut", daemon=True)
        self.cuts = 0

    def start(self) -> NetCut:
        self._thread.start()
        self._ready.wait(10)
        return self

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self._open = asyncio.Event()
        self._open.set()
        server = self.loop.run_until_complete(asyncio.start_server(self._serve, "127.0.0.1", self.port))
        self._ready.set()
        try:
            self.loop.run_forever()
        finally:
            server.close()
            self.loop.run_until_complete(server.wait_closed())
            self.loop.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        assert self._open is not None
        await self._open.wait()  # during a cut, a new connection gets nowhere
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.upstream_port)
        except OSError:
            writer.close()
            return
        self._writers |= {writer, up_writer}
        await asyncio.gather(self._pump(reader, up_writer), self._pump(up_reader, writer), return_exceptions=True)
        for w in (writer, up_writer):
            self._writers.discard(w)
            w.close()

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        assert self._open is not None
        try:
            while data := await reader.read(65536):
                await self._open.wait()
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            with contextlib.suppress(Exception):
                writer.close()

    def _call(self, fn: object) -> None:
        done = threading.Event()

        def run() -> None:
            fn()  # type: ignore[operator]
            done.set()

        self.loop.call_soon_threadsafe(run)
        done.wait(5)

    def cut(self) -> None:
        assert self._open is not None
        self.cuts += 1
        self._call(self._open.clear)

    def restore(self) -> None:
        assert self._open is not None
        self._call(self._open.set)

    def stop(self) -> None:
        def close_all() -> None:
            for w in list(self._writers):
                w.close()

        self._call(close_all)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)
