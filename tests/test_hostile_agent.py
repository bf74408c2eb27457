"""A hostile agent holding a valid token, against a real gateway and Redis, while a good agent works.

Every abuse is refused or contained with a documented close code or error, nothing is written to
Redis for it, and the well-behaved agent on the same gateway keeps receiving and finishing jobs
throughout (the ``good`` fixture checks it after every test). The budgets are set low here so that
floods trip them quickly; docs/security.md lists each abuse with the test that covers it.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
import redis
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from edgeexec import protocol as p
from edgeexec.airflow.redis_dispatcher import RedisDispatcher
from edgeexec.dispatch import JobSpec
from edgeexec.localstack.processes import Proc, wait_for
from edgeexec.store.keys import Keys
from edgeexec.tokens import store as token_store
from tests.rawws import RawWebSocket
from tests.servers import start_gateway

METRICS_TOKEN = "metrics-" + uuid.uuid4().hex
GATEWAY_ENV = {
    "AIRFLOW__EDGEEXEC__MAX_FRAMES_PER_SECOND": "100",  # bursts of 500 frames
    "AIRFLOW__EDGEEXEC__MAX_LOG_BYTES_PER_SECOND": "65536",  # bursts of 320 KiB
    "AIRFLOW__EDGEEXEC__SEND_TIMEOUT": "2",
    "AIRFLOW__EDGEEXEC__TOKEN_RECHECK_INTERVAL": "1",
    "AIRFLOW__EDGEEXEC__METRICS_TOKEN": METRICS_TOKEN,
    "AIRFLOW__EDGEEXEC__METRICS_INTERVAL": "3600",
    "AIRFLOW__EDGEEXEC__MAX_FRAME_BYTES": str(1 << 20),
}


class Gw:
    def __init__(self, port: int, keys: Keys, proc: Proc, client: redis.Redis) -> None:
        self.port, self.keys, self.proc, self.client = port, keys, proc, client
        self.url = f"ws://127.0.0.1:{port}/ws/agent"

    def token(self, agent: str = "", queues: tuple[str, ...] = (), admin: bool = False) -> str:
        return token_store.create(self.client, self.keys, agent=agent, queues=queues, admin=admin, ttl_s=None)[0]

    def metrics(self, token: str | None) -> tuple[int, str]:
        req = urllib.request.Request(f"http://127.0.0.1:{self.port}/metrics",
                                     headers={"Authorization": f"Bearer {token}"} if token else {})
        try:
            with urllib.request.urlopen(req, timeout=10) as r:
                return r.status, r.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode()

    def log_keys(self) -> set[str]:
        return set(self.client.scan_iter(self.keys.log("*"), count=1000))  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def gw(redis_server: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gw]:
    keys = Keys(f"hx{uuid.uuid4().hex[:8]}")
    log = Path(tmp_path_factory.mktemp("hostile")) / "gateway.log"
    port, proc = start_gateway(redis_server.url, keys.prefix, log, "--heartbeat-interval", "2", env=GATEWAY_ENV)
    client = redis.Redis.from_url(redis_server.url, decode_responses=True)
    yield Gw(port, keys, proc, client)
    client.close()
    proc.stop()
    assert not proc.alive()


@pytest.fixture(scope="module")
def dispatcher(redis_server: Any, gw: Gw) -> Iterator[RedisDispatcher]:
    d = RedisDispatcher.from_url(redis_server.url, gw.keys.prefix, liveness_s=30, job_ttl_s=600)
    d.start("sched-hostile")
    yield d
    d.stop(terminate=False)


def _spec(queue: str, workload: str = '{"token": "jwt-secret"}') -> JobSpec:
    job = uuid.uuid4().hex
    return JobSpec(job, f"ti:{job}:1", "task", queue, 1, 0, workload)


class GoodAgent:
    """Behaves as the real agent does on the wire: heartbeats, claims, runs, reports."""

    def __init__(self, gw: Gw, dispatcher: RedisDispatcher) -> None:
        self.gw, self.dispatcher = gw, dispatcher
        self.name = f"good-{uuid.uuid4().hex[:6]}"
        self.queue = f"good-{uuid.uuid4().hex[:6]}"
        self.token = gw.token(self.name, (self.queue,))
        self.acked: list[str] = []
        self.running: set[str] = set()
        self.tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        ws = await connect(self.gw.url, additional_headers={"Authorization": f"Bearer {self.token}"})
        await ws.send(p.encode(p.Hello(name=self.name, instance=uuid.uuid4().hex, queues=(self.queue,),
                                       concurrency=4)).decode())
        assert isinstance(p.decode(await ws.recv()), p.Welcome)
        self.tasks = [asyncio.create_task(self._frames(ws)), asyncio.create_task(self._beat(ws)),
                      asyncio.create_task(self._feed())]

    async def _frames(self, ws: ClientConnection) -> None:
        async for raw in ws:
            frame = p.decode(raw)
            if isinstance(frame, p.Run):
                await ws.send(p.encode(p.Accepted(job=frame.job)).decode())
            elif isinstance(frame, p.Start):
                self.running.add(frame.job)
                await ws.send(p.encode(p.LogChunk.of(frame.job, 0, b"working\n")).decode())
                await ws.send(p.encode(p.StateReport(job=frame.job, state=p.JobState.SUCCESS, exit_code=0)).decode())
            elif isinstance(frame, p.Ack):
                self.running.discard(frame.job)
                self.acked.append(frame.job)

    async def _beat(self, ws: ClientConnection) -> None:
        while True:
            await ws.send(p.encode(p.Heartbeat(used=len(self.running), state="idle")).decode())
            await asyncio.sleep(1)

    async def _feed(self) -> None:
        while True:
            self.dispatcher.submit([_spec(self.queue)])
            await asyncio.sleep(0.2)

    async def keeps_working(self, timeout: float = 20) -> None:
        before = len(self.acked)
        deadline = time.monotonic() + timeout
        while len(self.acked) < before + 3:
            for t in self.tasks:
                assert not t.done() or t.cancelled(), f"the good agent stopped: {t.exception()}"
            assert time.monotonic() < deadline, "the good agent stopped finishing jobs"
            await asyncio.sleep(0.1)

    async def stop(self) -> None:
        for t in self.tasks:
            t.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)


@pytest.fixture()
async def good(gw: Gw, dispatcher: RedisDispatcher) -> AsyncIterator[GoodAgent]:
    agent = GoodAgent(gw, dispatcher)
    await agent.start()
    await agent.keeps_working()
    yield agent
    await agent.keeps_working()  # ... and after the abuse, too
    await agent.stop()


async def _hostile(gw: Gw, queue: str = "", concurrency: int = 2) -> tuple[ClientConnection, str]:
    name = f"evil-{uuid.uuid4().hex[:6]}"
    queue = queue or f"evil-{uuid.uuid4().hex[:6]}"
    ws = await connect(gw.url, additional_headers={"Authorization": f"Bearer {gw.token(name, (queue,))}"},
                       max_size=None, ping_interval=None)  # a hostile client answers no pings of its own
    await ws.send(p.encode(p.Hello(name=name, instance="i", queues=(queue,), concurrency=concurrency)).decode())
    assert isinstance(p.decode(await ws.recv()), p.Welcome)
    return ws, queue


async def _frames_until_closed(ws: ClientConnection, timeout: float = 30) -> list[p.Frame]:
    out: list[p.Frame] = []
    with contextlib.suppress(ConnectionClosed):
        async with asyncio.timeout(timeout):
            async for raw in ws:
                out.append(p.decode(raw))
    return out


async def test_log_frames_for_jobs_it_does_not_hold_write_nothing(gw: Gw, good: GoodAgent) -> None:
    """Logs for made-up job ids and for another agent's running job are dropped unwritten; an agent
    that keeps sending them is cut off with 4412."""
    victim = next(iter(good.acked))
    victim_log = gw.client.get(gw.keys.log(victim))
    before = gw.log_keys()
    ws, _ = await _hostile(gw)
    for i in range(300):
        job = victim if i % 2 else uuid.uuid4().hex
        with contextlib.suppress(ConnectionClosed):
            await ws.send(p.encode(p.LogChunk.of(job, 0, b"x" * 1000)).decode())
    frames = await _frames_until_closed(ws)
    assert ws.close_code == p.CloseCode.NOT_YOURS
    assert any(isinstance(f, p.Error) and f.code == p.CloseCode.NOT_YOURS for f in frames)
    for key in gw.log_keys() - before:  # only the good agent's jobs got logs meanwhile
        job = key.rsplit(":", 1)[1]
        assert gw.client.hget(gw.keys.job(job), "agent") == good.name, f"a log for {job}"
    assert gw.client.get(gw.keys.log(victim)) == victim_log


async def test_reports_and_claims_for_other_agents_jobs_change_nothing(gw: Gw, good: GoodAgent,
                                                                     dispatcher: RedisDispatcher) -> None:
    """A state report for someone else's job is acked (so a confused agent forgets it) but not
    recorded; a claim of a job never offered is answered with a cancel; the job is untouched."""
    ws, _ = await _hostile(gw)
    victim = good.acked[-1]
    record = gw.client.hgetall(gw.keys.job(victim))
    await ws.send(p.encode(p.StateReport(job=victim, state=p.JobState.FAILED, reason="evil")).decode())
    await ws.send(p.encode(p.Accepted(job=victim)).decode())
    await ws.send(p.encode(p.Rejected(job=victim)).decode())
    got = [p.decode(await asyncio.wait_for(ws.recv(), 10)) for _ in range(2)]
    assert isinstance(got[0], p.Ack) and isinstance(got[1], p.Cancel)
    assert gw.client.hgetall(gw.keys.job(victim)) == record
    await ws.close()


@pytest.mark.slow  # seconds of load by design; `make fast` leaves it out
async def test_a_frame_flood_closes_only_that_session_with_4429(gw: Gw, good: GoodAgent,
                                                               dispatcher: RedisDispatcher) -> None:
    """More frames per second than the budget: 4429. The flood is of frames the gateway handles in
    well under a millisecond (one-byte log pieces of a job the session holds), so it outruns the
    budget however loaded the machine is. (A heartbeat flood cannot be relied on to: the gateway
    reads a session's next frame only after handling the last, and heartbeats wait a few ms to
    share a Redis round trip, so a slow enough machine reads them slower than the budget.)"""
    ws, queue = await _hostile(gw)
    dispatcher.submit([_spec(queue)])
    run = p.decode(await asyncio.wait_for(ws.recv(), 10))
    assert isinstance(run, p.Run)
    await ws.send(p.encode(p.Accepted(job=run.job)).decode())
    assert isinstance(p.decode(await asyncio.wait_for(ws.recv(), 10)), p.Start)
    with contextlib.suppress(ConnectionClosed):
        for offset in range(50_000):
            await ws.send(p.encode(p.LogChunk.of(run.job, offset, b"x")).decode())
    await _frames_until_closed(ws)
    assert ws.close_code == p.CloseCode.OVER_BUDGET
    assert gw.client.strlen(gw.keys.log(run.job)) < 50_000, "frames past the budget were handled"


async def test_a_log_flood_on_its_own_job_is_bounded_and_closed_with_4429(gw: Gw, good: GoodAgent,
                                                                        dispatcher: RedisDispatcher) -> None:
    """Logs for a job it does hold: stored up to the per-job cap, and a byte rate above the budget
    ends the session with 4429."""
    ws, queue = await _hostile(gw)
    spec = _spec(queue)
    dispatcher.submit([spec])
    run = p.decode(await asyncio.wait_for(ws.recv(), 10))
    assert isinstance(run, p.Run)
    await ws.send(p.encode(p.Accepted(job=run.job)).decode())
    assert isinstance(p.decode(await asyncio.wait_for(ws.recv(), 10)), p.Start)
    offset = 0
    with contextlib.suppress(ConnectionClosed):
        for _ in range(40):  # 2.5 MiB at once
            await ws.send(p.encode(p.LogChunk.of(run.job, offset, b"y" * p.MAX_LOG_PIECE)).decode())
            offset += p.MAX_LOG_PIECE
    await _frames_until_closed(ws)
    assert ws.close_code == p.CloseCode.OVER_BUDGET
    assert 0 < gw.client.strlen(gw.keys.log(run.job)) <= 1 << 20


async def test_an_oversize_frame_is_refused_with_1009(gw: Gw, good: GoodAgent) -> None:
    ws, _ = await _hostile(gw)
    with contextlib.suppress(ConnectionClosed):
        await ws.send("x" * (2 << 20))
    await _frames_until_closed(ws)
    assert ws.close_code == p.CloseCode.MESSAGE_TOO_BIG


async def test_malformed_log_pieces_are_refused_with_4400(gw: Gw, good: GoodAgent) -> None:
    """A log piece that is not base64, or bigger than a piece may be, is a protocol error."""
    for bad in ({"type": "log", "job": "j", "offset": 0, "b64": "!!not base64!!"},
                {"type": "log", "job": "j", "offset": 0, "data": "z" * (p.MAX_LOG_PIECE + 1)}):
        ws, _ = await _hostile(gw)
        await ws.send(orjson.dumps(bad).decode())
        frames = await _frames_until_closed(ws)
        assert ws.close_code == p.CloseCode.MALFORMED
        assert isinstance(frames[-1], p.Error) and "log" in frames[-1].message


@pytest.mark.slow  # seconds of load by design; `make fast` leaves it out
async def test_an_agent_that_never_reads_is_cut_off_and_the_rest_carry_on(gw: Gw, good: GoodAgent,
                                                                         dispatcher: RedisDispatcher) -> None:
    """Jobs keep being pushed to an agent that never reads its socket: its send queue fills or a
    send times out, its session alone is ended (4430 counted in /metrics), and the pub/sub
    listener keeps serving everyone else meanwhile (the good agent keeps finishing jobs)."""
    name, queue = f"deaf-{uuid.uuid4().hex[:6]}", f"deaf-{uuid.uuid4().hex[:6]}"
    raw = await RawWebSocket.connect(gw.port, gw.token(name, (queue,)), rcvbuf=4096)
    await raw.send(p.encode(p.Hello(name=name, instance="i", queues=(queue,), concurrency=64)))
    big = orjson.dumps({"token": "jwt-secret", "pad": "w" * (256 << 10)}).decode()
    dispatcher.submit([_spec(queue, big) for _ in range(64)])
    dropped = False
    for _ in range(10):  # keep it "alive" on the wire: it sends, it just never reads
        try:
            await raw.send(p.encode(p.Heartbeat(used=0, state="idle")))
        except ConnectionError:
            dropped = True  # the gateway already reset the connection
        await good.keeps_working()
    wait_for(lambda: gw.client.hget(gw.keys.agent(name), "connected") == "0", 30,
             "the gateway to end the deaf agent's session")
    if not dropped:
        await _connection_dropped(raw)
    raw.abort()
    status, text = gw.metrics(METRICS_TOKEN)
    assert status == 200 and f'edgeexec_agent_sessions_cut_off_total{{code="{int(p.CloseCode.SLOW_READER)}"}}' in text


async def _connection_dropped(raw: RawWebSocket, timeout: float = 15) -> None:
    """The gateway dropped the TCP connection (a reset), not merely stopped serving it: writes fail."""
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            await raw.send(p.encode(p.Heartbeat(used=0, state="idle")))
            await asyncio.sleep(0.1)
    except (ConnectionError, OSError):
        raw.abort()
        return
    raw.abort()
    raise AssertionError("the gateway kept the connection of an agent it cut off")


async def test_a_session_that_overflows_its_own_queue_is_ended_and_recorded(gw: Gw, good: GoodAgent) -> None:
    """A hello listing hundreds of running jobs that are not its own draws one cancel each: the
    session's queue overflows while the gateway is still handling the hello. The session ends,
    its disconnect is recorded (no new work is placed on it) and its connection is dropped."""
    name, queue = f"loud-{uuid.uuid4().hex[:6]}", f"loud-{uuid.uuid4().hex[:6]}"
    raw = await RawWebSocket.connect(gw.port, gw.token(name, (queue,)), rcvbuf=4096)
    jobs = tuple(p.JobStatus(uuid.uuid4().hex, p.JobState.RUNNING) for _ in range(600))
    await raw.send(p.encode(p.Hello(name=name, instance="i", queues=(queue,), concurrency=1, jobs=jobs)))
    wait_for(lambda: gw.client.hget(gw.keys.agent(name), "connected") == "0", 30,
             "the overflowing session's disconnect to be recorded")
    await _connection_dropped(raw)


async def test_a_revoked_token_ends_sessions_even_if_the_notice_is_lost(gw: Gw, good: GoodAgent) -> None:
    """The token's record is deleted without the pub/sub notice (as if the gateway had been
    resubscribing): the periodic re-validation ends the agent and the control session (4403)."""
    name, queue = f"rv-{uuid.uuid4().hex[:6]}", f"rv-{uuid.uuid4().hex[:6]}"
    token = gw.token(name, (queue,))
    admin = gw.token(admin=True)
    ws = await connect(gw.url, additional_headers={"Authorization": f"Bearer {token}"})
    await ws.send(p.encode(p.Hello(name=name, instance="i", queues=(queue,), concurrency=1)).decode())
    assert isinstance(p.decode(await ws.recv()), p.Welcome)
    control = await connect(f"ws://127.0.0.1:{gw.port}/ws/control", additional_headers={"Authorization": f"Bearer {admin}"})
    for t in (token, admin):
        gw.client.delete(f"{gw.keys.prefix}:token:{t.split('_')[1]}")
    await _frames_until_closed(ws, timeout=15)
    with contextlib.suppress(ConnectionClosed):
        async with asyncio.timeout(15):
            await control.recv()
    assert ws.close_code == p.CloseCode.FORBIDDEN and control.close_code == p.CloseCode.FORBIDDEN


async def test_a_token_that_expires_mid_session_ends_it(gw: Gw, good: GoodAgent) -> None:
    name, queue = f"ex-{uuid.uuid4().hex[:6]}", f"ex-{uuid.uuid4().hex[:6]}"
    token = gw.token(name, (queue,))
    ws = await connect(gw.url, additional_headers={"Authorization": f"Bearer {token}"})
    await ws.send(p.encode(p.Hello(name=name, instance="i", queues=(queue,), concurrency=1)).decode())
    assert isinstance(p.decode(await ws.recv()), p.Welcome)
    t = gw.client.time()
    gw.client.hset(f"{gw.keys.prefix}:token:{token.split('_')[1]}", "expires", int(t[0]) * 1000 + 1500)
    await _frames_until_closed(ws, timeout=15)
    assert ws.close_code == p.CloseCode.FORBIDDEN


async def test_set_queues_beyond_its_token_is_refused_and_the_agent_keeps_running(gw: Gw, good: GoodAgent) -> None:
    """An operator asks for a queue the agent's token does not allow: the command fails with the
    reason, and nothing is sent to the agent (which would otherwise be refused at re-registration)."""
    admin = gw.token(admin=True)
    async with connect(f"ws://127.0.0.1:{gw.port}/ws/control",
                       additional_headers={"Authorization": f"Bearer {admin}"}) as control:
        await control.send(orjson.dumps({"type": "command", "agent": good.name, "action": "set_queues",
                                         "queues": ["forbidden"], "id": 1}).decode())
        result = orjson.loads(await asyncio.wait_for(control.recv(), 10))
    assert result["ok"] is False and "not allowed by this agent's token" in result["message"]
    assert gw.client.hget(gw.keys.agent(good.name), "queues") == orjson.dumps([good.queue]).decode()


async def test_metrics_need_a_token_here_and_fleet_figures_are_cached(gw: Gw, good: GoodAgent) -> None:
    """With metrics_token set, /metrics takes that token or an admin token, nothing else; fleet
    figures are read from Redis once per metrics_interval, not per scrape."""
    assert gw.metrics(None)[0] == 401
    assert gw.metrics(gw.token("someone", ("q",)))[0] == 403
    assert gw.metrics(gw.token(admin=True))[0] == 200
    assert gw.metrics(METRICS_TOKEN)[0] == 200
    ws, queue = await _hostile(gw)  # a new queue appears in Redis...
    _, second = gw.metrics(METRICS_TOKEN)
    assert f'queue="{queue}"' not in second  # ... but the scrape reuses the cached fleet figures
    await ws.close()


async def test_refused_logins_are_rate_limited_per_address(redis_server: Any, tmp_path: Path) -> None:
    """After login_failures_per_minute refusals, the address's further refusals are a terse 429; a
    valid token from the same address (agents behind one NAT) is still admitted."""
    keys = Keys(f"rl{uuid.uuid4().hex[:8]}")
    port, proc = start_gateway(redis_server.url, keys.prefix, tmp_path / "gw.log",
                               env={"AIRFLOW__EDGEEXEC__LOGIN_FAILURES_PER_MINUTE": "5"})
    client = redis.Redis.from_url(redis_server.url, decode_responses=True)
    try:
        good_token = token_store.create(client, keys, agent="a", queues=("q",), admin=False, ttl_s=None)[0]
        statuses = []
        for token in ["eex_000000000000_" + "x" * 40] * 6:
            with pytest.raises(InvalidStatus) as err:
                async with connect(f"ws://127.0.0.1:{port}/ws/agent",
                                   additional_headers={"Authorization": f"Bearer {token}"}):
                    pass
            statuses.append(err.value.response.status_code)
        assert statuses == [403] * 5 + [429]
        async with connect(f"ws://127.0.0.1:{port}/ws/agent",
                           additional_headers={"Authorization": f"Bearer {good_token}"}) as ws:
            await ws.send(p.encode(p.Hello(name="a", instance="i", queues=("q",), concurrency=1)).decode())
            assert isinstance(p.decode(await ws.recv()), p.Welcome)
    finally:
        client.close()
        proc.stop()
