"""A real agent process against a scripted gateway: what the agent does when sessions end badly.

The gateway here is a WebSocket server in the test that plays one script per connection (welcome
or not, run, start, close), so a reconnect that fails half-way, or a ``start`` that arrives just
before the socket closes, happens exactly when the test wants. Each hello the agent sends is
recorded and checked: claims that never started must be listed as ``assigned`` (Redis returns
them to pending) until a welcome confirms it, and never turn into failed tries.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
from websockets.asyncio.server import ServerConnection, serve

from edgeexec import protocol as p
from edgeexec.localstack.processes import BIN, Proc, free_port

Script = Callable[[ServerConnection, p.Hello], Awaitable[None]]


class ScriptedGateway:
    def __init__(self, scripts: list[Script]) -> None:
        self.scripts = scripts
        self.hellos: list[p.Hello] = []
        self.frames: list[p.Frame] = []
        self.done = asyncio.Event()
        self.port = free_port()

    async def handle(self, ws: ServerConnection) -> None:
        hello = p.decode(await ws.recv())
        assert isinstance(hello, p.Hello)
        self.hellos.append(hello)
        if len(self.hellos) > len(self.scripts):
            self.done.set()
            await ws.close(1001, "script over")
            return
        await self.scripts[len(self.hellos) - 1](ws, hello)

    async def recv(self, ws: ServerConnection, cls: type) -> p.Frame:
        while True:
            frame = p.decode(await asyncio.wait_for(ws.recv(), 30))
            self.frames.append(frame)
            if isinstance(frame, cls):
                return frame


def _welcome() -> str:
    return p.encode(p.Welcome(session=uuid.uuid4().hex, protocol=3, heartbeat_interval=30, max_frame=1 << 20)).decode()


def _run(job: str) -> str:
    return p.encode(p.Run(job=job, workload='{"log_path": null}', slots=1)).decode()


@pytest.fixture()
async def agent_against(tmp_path: Path) -> AsyncIterator[Callable[[ScriptedGateway], Awaitable[None]]]:
    procs: list[Proc] = []
    servers = []

    async def start(gw: ScriptedGateway) -> None:
        servers.append(await serve(gw.handle, "127.0.0.1", gw.port).__aenter__())
        env = {"PATH": f"{BIN}:{os.environ.get('PATH', '')}", "AIRFLOW_HOME": str(tmp_path / "airflow"),
               "AIRFLOW__EDGEEXEC__TOKEN": "eex_000000000000_" + "t" * 40, "AIRFLOW__EDGEEXEC__MAX_BACKOFF": "1"}
        procs.append(Proc([str(BIN / "agent"), "start", "-q", "q", "-c", "2", "--name", "scripted",
                           "--url", f"ws://127.0.0.1:{gw.port}/ws/agent"],
                          env=env, log=tmp_path / "agent.log"))
        await asyncio.wait_for(gw.done.wait(), 120)

    yield start
    for proc in procs:
        proc.stop()
    for server in servers:
        server.close()


async def test_claims_survive_a_reconnect_that_fails_before_welcome(agent_against: Callable[..., Awaitable[None]]) -> None:
    """Session 1 offers a job that the agent claims, then ends before its start. The next hello
    is lost (the gateway closes before welcome, as in a Redis failover). The hello after that must
    still list the claim as assigned, so it goes back to pending instead of being dropped."""
    job = uuid.uuid4().hex

    async def offer_then_close(ws: ServerConnection, hello: p.Hello) -> None:
        await ws.send(_welcome())
        await ws.send(_run(job))
        await gw.recv(ws, p.Accepted)
        await ws.close(1001, "gateway restarting")

    async def close_before_welcome(ws: ServerConnection, hello: p.Hello) -> None:
        await ws.close(1013, "the gateway lost its Redis connection; reconnect shortly")

    gw = ScriptedGateway([offer_then_close, close_before_welcome])
    await agent_against(gw)
    listed = [{(j.job, j.state) for j in h.jobs} for h in gw.hellos]
    assert listed[1] == {(job, p.JobState.ASSIGNED)}
    assert listed[2] == {(job, p.JobState.ASSIGNED)}, "the claim was forgotten after a failed reconnect"


async def test_a_start_that_arrives_as_the_session_closes_is_never_a_failed_try(
        agent_against: Callable[..., Awaitable[None]], tmp_path: Path) -> None:
    """``start`` and the close arrive together: the job either started (listed running) or goes
    back to pending (listed assigned), but the agent never reports a failure for a job that did
    not run."""
    job = uuid.uuid4().hex

    async def start_and_close(ws: ServerConnection, hello: p.Hello) -> None:
        await ws.send(_welcome())
        await ws.send(_run(job))
        await gw.recv(ws, p.Accepted)
        await ws.send(p.encode(p.Start(job=job)).decode())
        await ws.close(1001, "gateway restarting")

    gw = ScriptedGateway([start_and_close])
    await agent_against(gw)
    after = {j.job: j for j in gw.hellos[1].jobs}
    assert job in after
    assert after[job].state in (p.JobState.ASSIGNED, p.JobState.RUNNING, p.JobState.FAILED)
    if after[job].state is p.JobState.FAILED:
        assert f"job {job} started (pid" in (tmp_path / "agent.log").read_text(), "reported failed without ever running"
