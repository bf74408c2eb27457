"""The agent's local control socket: operator commands on the agent's own host, no token needed.

A Unix socket (mode 0600, so only the agent's user can use it) named ``edgeexec-agent-<name>.sock``
in a directory only that user can enter (see :func:`socket_dir`); a directory that fails that
check is refused, and the agent then runs without its local socket rather than crash-looping. One JSON request per
connection, answered with JSON lines in the same shapes as the gateway's control endpoint, so the
CLI renders both alike:

* ``{"action": "status", "watch": bool}`` -> ``snapshot`` then (with watch) ``agent`` on each change;
* ``{"action": "maintenance_on" | "maintenance_off" | "drain" | "shutdown", "comments": str}`` ->
  one ``result``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import stat
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path
from types import TracebackType
from typing import Any, Protocol

import orjson

from edgeexec import protocol as p

log = logging.getLogger(__name__)
WATCH_INTERVAL = 0.5
ACTIONS = p.LOCAL_ACTIONS
"""What the local socket may do: every command that does not change the agent's registration."""
SYSTEMD_DIR = Path("/run/edgeexec-agent")


def socket_dir(systemd_dir: Path = SYSTEMD_DIR, tmp: str | None = None) -> Path:
    """A directory only this user can enter: systemd's RuntimeDirectory ($RUNTIME_DIRECTORY), the
    login session's $XDG_RUNTIME_DIR, else a per-user 0700 directory under the temp dir that is
    refused unless this user owns it (another local user could otherwise pre-create the socket)."""
    if base := os.environ.get("RUNTIME_DIRECTORY", "").split(":")[0]:
        return _private(Path(base))
    if systemd_dir.is_dir() and systemd_dir.stat().st_uid == os.getuid():
        return _private(systemd_dir)  # the unit's RuntimeDirectory, found from an operator's shell too
    if base := os.environ.get("XDG_RUNTIME_DIR", ""):
        return _private(Path(base))
    path = Path(tmp or tempfile.gettempdir()) / f"edgeexec-{os.getuid()}"
    with contextlib.suppress(FileExistsError):
        path.mkdir(mode=0o700)
    return _private(path)


def _private(path: Path) -> Path:
    st = path.lstat()
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.getuid() or st.st_mode & 0o077:
        raise OSError(f"{path} is not a private directory of this user (owner uid {st.st_uid}, mode "
                      f"{stat.filemode(st.st_mode)}); remove it, or set XDG_RUNTIME_DIR to a private directory")
    return path


def socket_path(name: str) -> Path:
    return socket_dir() / f"edgeexec-agent-{name}.sock"


class Controllable(Protocol):
    """What the socket needs from the agent (agent.core.Agent)."""

    def record(self) -> p.AgentRecord: ...

    def operator(self, action: str, comments: str) -> None: ...


class LocalControlServer:
    def __init__(self, agent: Controllable, name: str) -> None:
        self.agent, self.name = agent, name
        self.path: Path | None = None
        self.server: asyncio.AbstractServer | None = None

    async def start(self) -> None:
        try:
            self.path = socket_path(self.name)
        except OSError as exc:
            log.error("no local control socket (`agent status` on this host will not work): %s", exc)
            return
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()  # left by an agent that was killed; a live one would hold the name anyway
        old = os.umask(0o177)
        try:
            self.server = await asyncio.start_unix_server(self._serve, path=str(self.path))
        finally:
            os.umask(old)
        log.info("local control socket at %s", self.path)

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()
        if self.path is not None:
            with contextlib.suppress(FileNotFoundError):
                self.path.unlink()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            req = orjson.loads(await reader.readline())
            if not isinstance(req, dict):
                raise ValueError("a request is a JSON object")
            await self._request(req, writer)
        except (ValueError, orjson.JSONDecodeError) as exc:
            await _write(writer, p.command_result(False, f"bad request: {exc}"))
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            with contextlib.suppress(ConnectionError):
                writer.close()

    async def _request(self, req: dict[str, Any], writer: asyncio.StreamWriter) -> None:
        action = req.get("action")
        if action == "status":
            await self._status(writer, bool(req.get("watch")))
        elif action in ACTIONS:
            self.agent.operator(str(action), str(req.get("comments", "")))
            await _write(writer, p.command_result(True, f"{action} applied to the local agent"))
        else:
            known = ", ".join(sorted(a.value for a in ACTIONS))
            await _write(writer, p.command_result(False, f"unknown action {action!r}; use status or one of {known}"))

    async def _status(self, writer: asyncio.StreamWriter, watch: bool) -> None:
        last = self.agent.record()
        await _write(writer, p.snapshot([last], {}))
        while watch:
            await asyncio.sleep(WATCH_INTERVAL)
            now = self.agent.record()
            if _changed(last, now):
                await _write(writer, p.agent_delta(now))
                last = now


def _changed(a: p.AgentRecord, b: p.AgentRecord) -> bool:
    return any(a.get(k) != b.get(k) for k in p.AGENT_RECORD_CHANGES)


async def _write(writer: asyncio.StreamWriter, msg: dict[str, Any]) -> None:
    writer.write(orjson.dumps(msg) + b"\n")
    await writer.drain()


class LocalControlClient:
    """Same interface as agent.control_client.ControlClient, over the local socket."""

    def __init__(self, path: Path, name: str) -> None:
        self.path, self.name = path, name

    async def __aenter__(self) -> LocalControlClient:
        return self

    async def __aexit__(self, *exc: tuple[type[BaseException], BaseException, TracebackType] | Any) -> None:
        return None

    async def _open(self, req: dict[str, Any]) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        reader, writer = await asyncio.open_unix_connection(str(self.path))
        await _write(writer, req)
        return reader, writer

    async def command(self, agent: str, action: str, **fields: Any) -> tuple[bool, str]:
        reader, writer = await self._open({"action": action, **fields})
        msg = orjson.loads(await reader.readline())
        writer.close()
        return bool(msg["ok"]), str(msg["message"])

    async def stream(self) -> AsyncIterator[dict[str, Any]]:
        try:
            reader, writer = await self._open({"action": "status", "watch": True})
        except (FileNotFoundError, ConnectionRefusedError):
            yield self._exited()  # the agent exited (and removed its socket) before we could watch it
            return
        try:
            while line := await reader.readline():
                yield orjson.loads(line)
            yield self._exited()  # the socket closed: the agent process has exited
        finally:
            writer.close()

    def _exited(self) -> dict[str, Any]:
        return p.agent_delta(p.gone_agent(self.name))
