"""Redis Sentinel: a real master, replica and sentinel on loopback; the master dies mid-run.

The scheduler's dispatcher and a gateway process both use a ``redis+sentinel://`` URL. After the
master is SIGKILLed and the sentinel promotes the replica, jobs keep flowing through the same
dispatcher and gateway without restarting either, and the job finished before the failover is
reported exactly once.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from edgeexec import protocol as p
from edgeexec.airflow.redis_dispatcher import RedisDispatcher
from edgeexec.errors import ConfigError, StoreUnavailable
from edgeexec.localstack.processes import Proc, RedisServer, free_port, port_open, wait_for
from edgeexec.store.redis_url import parse_sentinel, redact
from tests.servers import start_gateway
from tests.test_gateway import SECRET, RawAgent, _spec

SERVICE = "edgeexec-ha"


class SentinelSet:
    def __init__(self, tmp: Path) -> None:
        self.master = RedisServer(tmp / "master").start()
        self.replica = RedisServer(tmp / "replica", extra=["--replicaof", "127.0.0.1", str(self.master.port)]).start()
        self.port = free_port()
        conf = tmp / "sentinel.conf"
        conf.write_text(f"port {self.port}\nbind 127.0.0.1\nsentinel monitor {SERVICE} 127.0.0.1 {self.master.port} 1\n"
                        f"sentinel down-after-milliseconds {SERVICE} 1000\nsentinel failover-timeout {SERVICE} 5000\n")
        self.sentinel = Proc(["redis-server", str(conf), "--sentinel"], log=tmp / "sentinel.log")
        wait_for(lambda: port_open(self.port), 15, "redis sentinel")
        wait_for(lambda: self.replica_synced(), 30, "the replica to sync")

    @property
    def url(self) -> str:
        return f"redis+sentinel://127.0.0.1:{self.port}/{SERVICE}/0"

    def replica_synced(self) -> bool:
        info = redis.Redis(port=self.replica.port).info("replication")
        return bool(info.get("master_link_status") == "up")

    def master_port(self) -> int:
        _host, port = redis.Redis(port=self.port).sentinel_get_master_addr_by_name(SERVICE)
        return int(port)

    def stop(self) -> None:
        self.sentinel.stop()
        self.replica.stop()
        self.master.stop()


@pytest.fixture()
def sentinel_set(tmp_path: Path) -> Iterator[SentinelSet]:
    s = SentinelSet(tmp_path)
    yield s
    s.stop()


def test_sentinel_urls_parse_and_errors_say_what_is_wrong() -> None:
    u = parse_sentinel("redis+sentinel://:pw@s1:26379,s2:26380/mymaster/2?sentinel_password=sp")
    assert (u.hosts, u.service, u.db, u.password, u.sentinel_password) == (
        (("s1", 26379), ("s2", 26380)), "mymaster", 2, "pw", "sp")
    assert parse_sentinel("redis+sentinel://s1/mymaster").hosts == (("s1", 26379),)
    for bad, says in (("redis+sentinel://s1:26379", "service"), ("redis+sentinel://s1:x/m", "host:port"),
                      ("redis+sentinel://s1/m/notanumber", "db")):
        with pytest.raises(ConfigError, match=says):
            parse_sentinel(bad)
    assert "pw" not in redact("redis+sentinel://:pw@s1:26379/m?sentinel_password=sp")


RECONNECT_CODES = {p.CloseCode.TRY_AGAIN_LATER, p.CloseCode.GOING_AWAY, p.CloseCode.SILENT,
                   p.CloseCode.SESSION_REPLACED, None}
"""Close codes after which a real agent reconnects (agent/reconnect.py: everything not fatal);
None is a connection that dropped without a close frame."""


class StandInAgent:
    """Stands in for agent/core.py across a failover, as the real agent behaves: it heartbeats while
    it waits, and when the gateway closes its session with a code an agent reconnects on (1013
    while the gateway has no Redis, among others) it reconnects and says hello again, listing the
    results not yet acked, so the gateway re-offers its jobs and takes the results."""

    def __init__(self, port: int, instance: str) -> None:
        self.port, self.instance = port, instance
        self.ws: Any = None
        self.raw: RawAgent | None = None
        self.unacked: dict[str, p.StateReport] = {}

    async def connect(self) -> None:
        jobs = tuple(p.JobStatus(j, r.state) for j, r in self.unacked.items())
        self.ws, self.raw = await _session(self.port, self.instance, jobs)
        for report in self.unacked.values():
            await self.raw.send(report)

    async def _frame(self, cls: type) -> Any:
        """The next frame of type ``cls``, heartbeating each second and reconnecting as needed."""
        for _ in range(60):
            assert self.raw is not None
            try:
                return await self.raw.recv_type(cls, timeout=1)
            except TimeoutError:
                with contextlib.suppress(ConnectionClosed):
                    await self.raw.send(p.Heartbeat(used=0, state="idle"))
            except ConnectionClosed:
                assert self.ws.close_code in RECONNECT_CODES, f"closed with {self.ws.close_code}"
                await self.connect()
        raise AssertionError(f"no {cls.TYPE} frame in 60 s")

    async def run_one(self, dispatcher: RedisDispatcher, queue: str) -> str:
        """Submit as the executor does (a StoreUnavailable is retried on the next scheduler
        heartbeat), then take the job, run it and wait for the result to be acked."""
        spec = _spec(queue)
        for _ in range(60):
            try:
                dispatcher.submit([spec])
                break
            except StoreUnavailable:
                await asyncio.sleep(0.5)
        run = await self._frame(p.Run)
        assert run.job == spec.job_id, "another job reached the agent"
        assert self.raw is not None
        with contextlib.suppress(ConnectionClosed):
            await self.raw.send(p.Accepted(job=run.job))
        await self._frame(p.Start)
        self.unacked[run.job] = p.StateReport(job=run.job, state=p.JobState.SUCCESS, exit_code=0)
        with contextlib.suppress(ConnectionClosed):
            await self.raw.send(self.unacked[run.job])
        await self._frame(p.Ack)
        self.unacked.pop(run.job)
        return str(run.job)


async def _finished(dispatcher: RedisDispatcher, job: str, timeout: float = 30) -> list[Any]:
    seen: list[Any] = []
    for _ in range(int(timeout * 10)):
        with contextlib.suppress(StoreUnavailable):  # the master is moving; the executor retries too
            seen += [e for e in dispatcher.events() if e.job_id == job]
        if any(e.state is p.JobState.SUCCESS for e in seen):
            return seen
        await asyncio.sleep(0.1)
    raise AssertionError(f"job {job} never reported success; saw {seen}")


async def _session(port: int, instance: str, jobs: tuple[p.JobStatus, ...] = ()) -> tuple[Any, RawAgent]:
    """Connect and hello as the real agent does, retrying while the gateway has no Redis."""
    for _ in range(60):
        ws = await connect(f"ws://127.0.0.1:{port}/ws/agent", additional_headers={"Authorization": f"Bearer {SECRET}"})
        agent = RawAgent(ws, "ha-agent")
        await agent.send(p.Hello(name="ha-agent", instance=instance, queues=("ha",), concurrency=2, jobs=jobs))
        try:
            frame = await agent.recv()
        except ConnectionClosed:
            frame = None
        if isinstance(frame, p.Welcome):
            return ws, agent
        await ws.close()
        await asyncio.sleep(0.5)
    raise AssertionError("the gateway never welcomed the agent back")


async def test_jobs_flow_through_a_sentinel_failover(sentinel_set: SentinelSet, tmp_path: Path) -> None:
    prefix = "ha" + uuid.uuid4().hex[:6]
    port, gw = start_gateway(sentinel_set.url, prefix, tmp_path / "gateway.log", "--heartbeat-interval", "1",
                             env={"AIRFLOW__EDGEEXEC__SHARED_SECRET": SECRET,
                                  "AIRFLOW__EDGEEXEC__ALLOW_SHARED_SECRET": "true"})
    dispatcher = RedisDispatcher.from_url(sentinel_set.url, prefix, liveness_s=30, job_ttl_s=600)
    dispatcher.start("sched-ha")
    agent = StandInAgent(port, uuid.uuid4().hex)
    try:
        await agent.connect()
        before = await agent.run_one(dispatcher, "ha")
        assert [e.state for e in await _finished(dispatcher, before)] == [p.JobState.RUNNING, p.JobState.SUCCESS]

        old = sentinel_set.master_port()
        redis.Redis(port=old).wait(1, 5000)  # what was acknowledged is on the replica
        sentinel_set.master.proc.send(9)  # type: ignore[union-attr]
        wait_for(lambda: sentinel_set.master_port() != old, 60, "the sentinel to promote the replica")

        # The session's frames either reach the new master, or the gateway closes the session
        # with 1013 (it lost Redis) and the stand-in reconnects as an agent does, whenever that
        # happens: both are recoveries.
        after = await agent.run_one(dispatcher, "ha")
        assert [e.state for e in await _finished(dispatcher, after)][-1] is p.JobState.SUCCESS
        assert not [e for e in dispatcher.events() if e.job_id == before], "a job was reported twice"
        await agent.ws.close()
    finally:
        dispatcher.stop(terminate=False)
        gw.stop()
    assert not gw.alive()
