"""A real gateway process on loopback, spoken to over real WebSockets by a protocol-level client."""

from __future__ import annotations

import asyncio
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
from edgeexec.jobs import JobSpec
from edgeexec.keys import Keys
from edgeexec.localstack.processes import Proc, free_port, wait_for
from edgeexec.redis_dispatcher import RedisDispatcher
from tests.servers import start_gateway

SECRET = "test-secret-" + uuid.uuid4().hex
HEARTBEAT = 1.0


class Gateway:
    def __init__(self, port: int, keys: Keys, proc: Proc) -> None:
        self.port, self.keys, self.proc = port, keys, proc

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws/agent"


@pytest.fixture(scope="module")
def gateway(redis_server: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    port = free_port()
    keys = Keys(f"gw{uuid.uuid4().hex[:8]}")
    log = Path(tmp_path_factory.mktemp("gateway")) / "gateway.log"
    env = {"AIRFLOW__EDGEEXEC__SHARED_SECRET": SECRET, "AIRFLOW__EDGEEXEC__ALLOW_SHARED_SECRET": "true",
           "AIRFLOW__EDGEEXEC__HELLO_TIMEOUT": "1", "AIRFLOW__EDGEEXEC__MAX_FRAME_BYTES": "65536"}
    port, proc = start_gateway(redis_server.url, keys.prefix, log, "--heartbeat-interval", str(HEARTBEAT), env=env)
    yield Gateway(port, keys, proc)
    proc.stop()
    assert not proc.alive()


@pytest.fixture()
def dispatcher(redis_server: Any, gateway: Gateway) -> Iterator[RedisDispatcher]:
    d = RedisDispatcher.from_url(redis_server.url, gateway.keys.prefix, liveness_s=3 * HEARTBEAT, job_ttl_s=600)
    d.start("sched-" + uuid.uuid4().hex[:6])
    yield d
    d.stop(terminate=False)


def _name() -> str:
    return "agent-" + uuid.uuid4().hex[:8]


class RawAgent:
    """Speaks the agent protocol frame by frame, so tests control every byte."""

    def __init__(self, ws: ClientConnection, name: str) -> None:
        self.ws, self.name = ws, name

    async def send(self, frame: p.Frame) -> None:
        await self.ws.send(p.encode(frame).decode())

    async def recv(self, timeout: float = 10) -> p.Frame:
        return p.decode(await asyncio.wait_for(self.ws.recv(), timeout))

    async def recv_type(self, cls: type, timeout: float = 10) -> Any:
        while True:
            frame = await self.recv(timeout)
            if isinstance(frame, cls):
                return frame


async def _hello(ws: ClientConnection, name: str, queues: tuple[str, ...] = ("q",), concurrency: int = 2,
                 instance: str = "", jobs: tuple[p.JobStatus, ...] = ()) -> RawAgent:
    agent = RawAgent(ws, name)
    await agent.send(p.Hello(name=name, instance=instance or uuid.uuid4().hex, queues=queues,
                             concurrency=concurrency, jobs=jobs))
    assert isinstance(await agent.recv(), p.Welcome)
    return agent


def _connect(gw: Gateway, secret: str = SECRET) -> Any:
    return connect(gw.url, additional_headers={"Authorization": f"Bearer {secret}"}, max_size=None)


def _spec(queue: str = "q", slots: int = 1) -> JobSpec:
    job = uuid.uuid4().hex
    return JobSpec(job, f"ti:{job}:1", "task", queue, slots, 0, '{"token": "jwt-secret"}')


async def _closed_with(ws: ClientConnection) -> int | None:
    with pytest.raises(ConnectionClosed):
        for _ in range(10):
            await asyncio.wait_for(ws.recv(), 10)
    return ws.close_code


async def _wait_events(d: RedisDispatcher, n: int, timeout: float = 10) -> list[Any]:
    out: list[Any] = []
    for _ in range(int(timeout * 20)):
        out += list(d.events())
        if len(out) >= n:
            return out
        await asyncio.sleep(0.05)
    return out


async def test_job_flows_run_accept_state_ack(gateway: Gateway, dispatcher: RedisDispatcher) -> None:
    """A submitted job is pushed, accepted, finished and acked; the executor sees running then success."""
    async with _connect(gateway) as ws:
        agent = await _hello(ws, _name())
        spec = _spec()
        dispatcher.submit([spec])
        run = await agent.recv_type(p.Run)
        assert (run.job, run.slots) == (spec.job_id, 1)
        await agent.send(p.Accepted(job=run.job))
        assert (await agent.recv_type(p.Start)).job == run.job
        await agent.send(p.StateReport(job=run.job, state=p.JobState.SUCCESS, exit_code=0))
        ack = await agent.recv_type(p.Ack)
        assert ack.job == run.job
        events = await _wait_events(dispatcher, 2)
        assert [e.state for e in events] == [p.JobState.RUNNING, p.JobState.SUCCESS]


async def test_agent_that_connects_later_gets_pending_jobs(gateway: Gateway, dispatcher: RedisDispatcher) -> None:
    """Jobs queued before any agent exists are pushed as soon as one connects."""
    queue = "late-" + uuid.uuid4().hex[:6]
    specs = [_spec(queue) for _ in range(3)]
    dispatcher.submit(specs)
    async with _connect(gateway) as ws:
        agent = await _hello(ws, _name(), queues=(queue,), concurrency=3)
        got = {(await agent.recv_type(p.Run)).job for _ in specs}
        assert got == {s.job_id for s in specs}


async def test_result_produced_while_disconnected_is_delivered_once(
        gateway: Gateway, dispatcher: RedisDispatcher, rclient: redis.Redis) -> None:
    """An agent that loses its socket mid-job resends the final state after reconnecting; no duplicate."""
    name, instance = _name(), uuid.uuid4().hex
    spec = _spec()
    async with _connect(gateway) as ws:
        agent = await _hello(ws, name, instance=instance)
        dispatcher.submit([spec])
        run = await agent.recv_type(p.Run)
        await agent.send(p.Accepted(job=run.job))
    # the job finished while the agent was offline; it says so in hello, then resends the state
    async with _connect(gateway) as ws:
        done = p.JobStatus(run.job, p.JobState.SUCCESS, 0)
        agent = await _hello(ws, name, instance=instance, jobs=(done,))
        for _ in range(2):
            await agent.send(p.StateReport(job=run.job, state=p.JobState.SUCCESS, exit_code=0))
            await agent.recv_type(p.Ack)
    events = await _wait_events(dispatcher, 2)
    assert [e.state for e in events] == [p.JobState.RUNNING, p.JobState.SUCCESS]
    assert rclient.hget(gateway.keys.agent(name), "used") == "0"


async def test_job_replaced_while_its_run_was_in_flight_starts_only_once(
        gateway: Gateway, dispatcher: RedisDispatcher, rclient: redis.Redis) -> None:
    """The reaper re-places a job an agent has been sent but not yet claimed (the agent looked
    dead): the late claim is refused with a cancel, and only the new holder is told to start."""
    queue = "replace-" + uuid.uuid4().hex[:6]
    async with _connect(gateway) as ws_a:
        slow = await _hello(ws_a, _name(), queues=(queue,), concurrency=1)
        spec = _spec(queue)
        dispatcher.submit([spec])
        run = await slow.recv_type(p.Run)
        rclient.zadd(gateway.keys.heartbeats, {slow.name: 0})  # silent for longer than the liveness timeout
        dispatcher.sweep()
        async with _connect(gateway) as ws_b:
            fresh = await _hello(ws_b, _name(), queues=(queue,), concurrency=1)
            assert (await fresh.recv_type(p.Run)).job == run.job
            await slow.send(p.Accepted(job=run.job))
            cancel = await slow.recv_type(p.Cancel)
            assert cancel.job == run.job and "foreign" in cancel.reason
            await fresh.send(p.Accepted(job=run.job))
            assert (await fresh.recv_type(p.Start)).job == run.job
    assert rclient.hget(gateway.keys.job(run.job), "agent") == fresh.name


async def test_claim_whose_start_was_lost_goes_back_to_pending(
        gateway: Gateway, dispatcher: RedisDispatcher, rclient: redis.Redis) -> None:
    """A session that ends between claim and start: the agent lists the job as assigned in its
    next hello, and the job is offered again instead of being failed as a vanished run."""
    name, instance, queue = _name(), uuid.uuid4().hex, "lost-start-" + uuid.uuid4().hex[:6]
    async with _connect(gateway) as ws:
        agent = await _hello(ws, name, queues=(queue,), concurrency=1, instance=instance)
        dispatcher.submit([_spec(queue)])
        run = await agent.recv_type(p.Run)
        await agent.send(p.Accepted(job=run.job))
        await agent.recv_type(p.Start)  # Redis has it running; pretend the frame never arrived
    async with _connect(gateway) as ws:
        agent = await _hello(ws, name, queues=(queue,), concurrency=1, instance=instance,
                             jobs=(p.JobStatus(run.job, p.JobState.ASSIGNED),))
        assert (await agent.recv_type(p.Run)).job == run.job
        await agent.send(p.Accepted(job=run.job))
        await agent.recv_type(p.Start)
        await agent.send(p.StateReport(job=run.job, state=p.JobState.SUCCESS, exit_code=0))
        await agent.recv_type(p.Ack)
    events = await _wait_events(dispatcher, 3)
    assert [e.state for e in events] == [p.JobState.RUNNING, p.JobState.RUNNING, p.JobState.SUCCESS]
    assert rclient.hget(gateway.keys.agent(name), "used") == "0"


async def test_second_live_agent_with_same_name_is_refused(gateway: Gateway) -> None:
    """Two processes may not share a name while the first is alive."""
    name = _name()
    async with _connect(gateway) as ws1, _connect(gateway) as ws2:
        await _hello(ws1, name)
        await ws2.send(p.encode(p.Hello(name=name, instance="other", queues=("q",), concurrency=1)).decode())
        err = p.decode(await asyncio.wait_for(ws2.recv(), 10))
        assert isinstance(err, p.Error) and "already connected" in err.message
        assert await _closed_with(ws2) == p.CloseCode.NAME_IN_USE


async def test_restarted_agent_is_accepted_at_once(gateway: Gateway) -> None:
    """After a crash (socket gone) the same name reconnects immediately, no lock-out."""
    name = _name()
    async with _connect(gateway) as ws:
        await _hello(ws, name, instance="first")
    async with _connect(gateway) as ws:
        await _hello(ws, name, instance="second")


# ---------------------------------------------------------------------------- bad input


@pytest.fixture()
async def healthy(gateway: Gateway, dispatcher: RedisDispatcher) -> AsyncIterator[Any]:
    """After every bad-input case, a well-behaved agent must still get and finish work."""
    yield
    queue = "healthy-" + uuid.uuid4().hex[:6]
    async with _connect(gateway) as ws:
        agent = await _hello(ws, _name(), queues=(queue,))
        spec = _spec(queue)
        dispatcher.submit([spec])
        run = await agent.recv_type(p.Run)
        await agent.send(p.StateReport(job=run.job, state=p.JobState.SUCCESS, exit_code=0))
        assert (await agent.recv_type(p.Ack)).job == spec.job_id


@pytest.mark.parametrize(("secret", "status"), [("wrong", 403), ("", 401)])
async def test_bad_secret_is_refused_before_the_socket_opens(
        gateway: Gateway, healthy: None, secret: str, status: int) -> None:
    """Wrong or missing credentials get an HTTP 401/403 with an explanation, not an accepted socket."""
    headers = {"Authorization": f"Bearer {secret}"} if secret else {}
    with pytest.raises(InvalidStatus) as err:
        async with connect(gateway.url, additional_headers=headers):
            pass
    assert err.value.response.status_code == status
    body = orjson.loads(err.value.response.body or b"{}")
    assert "token" in body["error"] or "Authorization" in body["error"]


@pytest.mark.parametrize(
    ("raw", "code", "needle"),
    [
        ("{this is not json", p.CloseCode.MALFORMED, "not valid JSON"),
        ('{"type": "teleport"}', p.CloseCode.MALFORMED, "unknown frame type"),
        ('{"type": "run", "job": "x", "workload": "{}"}', p.CloseCode.MALFORMED, "unknown frame type 'run'"),
        ('{"type": "heartbeat", "used": "lots"}', p.CloseCode.MALFORMED, "heartbeat.used"),
    ],
)
async def test_malformed_frame_after_hello_closes_with_documented_code(
        gateway: Gateway, healthy: None, rclient: redis.Redis, raw: str, code: int, needle: str) -> None:
    """Garbage from an agent ends its session with an error frame and close code; nothing leaks."""
    name = _name()
    async with _connect(gateway) as ws:
        await _hello(ws, name)
        await ws.send(raw)
        err = p.decode(await asyncio.wait_for(ws.recv(), 10))
        assert isinstance(err, p.Error) and needle in err.message
        assert await _closed_with(ws) == code
    wait_for(lambda: rclient.hget(gateway.keys.agent(name), "connected") == "0", 10, "disconnect recorded")
    assert rclient.zscore(gateway.keys.free("q"), name) is None


@pytest.mark.parametrize(
    ("hello", "code", "needle"),
    [
        ({"queues": ["q" * 257]}, p.CloseCode.INVALID_HELLO, "queue name"),
        ({"name": "no spaces please"}, p.CloseCode.INVALID_HELLO, "agent name"),
        ({"protocols": [99]}, p.CloseCode.UNSUPPORTED_PROTOCOL, "no common protocol version"),
        ({"protocols": [1]}, p.CloseCode.UNSUPPORTED_PROTOCOL, "no common protocol version"),
        ({"type": "heartbeat", "used": 0}, p.CloseCode.MALFORMED, "unknown frame type 'heartbeat'"),
    ],
)
async def test_bad_hello_is_refused_with_documented_code(
        gateway: Gateway, healthy: None, rclient: redis.Redis, hello: dict[str, Any], code: int,
        needle: str) -> None:
    """A queue name over 256 characters, a bad name, an unknown protocol: refused and not registered."""
    frame: dict[str, Any] = {"type": "hello", "name": _name(), "instance": "i", "queues": ["q"], "concurrency": 1,
                             "protocols": list(p.PROTOCOL_VERSIONS)}
    frame.update(hello)
    async with _connect(gateway) as ws:
        await ws.send(orjson.dumps(frame).decode())
        err = p.decode(await asyncio.wait_for(ws.recv(), 10))
        assert isinstance(err, p.Error) and needle in err.message
        assert await _closed_with(ws) == code
    assert not rclient.exists(gateway.keys.agent(str(frame.get("name"))))


async def test_oversize_frame_is_refused_with_1009(gateway: Gateway, healthy: None) -> None:
    """A frame over max_frame_bytes closes the session with 1009 (message too big)."""
    async with _connect(gateway) as ws:
        await _hello(ws, _name())
        await ws.send("x" * 70_000)
        assert await _closed_with(ws) == p.CloseCode.MESSAGE_TOO_BIG


async def test_silent_client_is_dropped_after_hello_timeout(gateway: Gateway, healthy: None) -> None:
    """A client that never says hello does not hold a socket forever."""
    async with _connect(gateway) as ws:
        assert await _closed_with(ws) == p.CloseCode.HELLO_TIMEOUT


async def test_health_endpoint_reports_redis(gateway: Gateway) -> None:
    """/health is 200 with Redis reachable (load balancers and compose healthchecks use it)."""
    import urllib.request

    with urllib.request.urlopen(f"http://127.0.0.1:{gateway.port}/health", timeout=5) as r:
        assert orjson.loads(r.read())["status"] == "ok"


async def test_metrics_scrape_parses_and_reflects_activity(gateway: Gateway, dispatcher: RedisDispatcher) -> None:
    """/metrics parses as Prometheus text: agents, slots and pending per queue, dispatch latency,
    frames in/out, auth failures and reconnects all reflect what just happened."""
    import urllib.request

    from prometheus_client.parser import text_string_to_metric_families

    queue = "metrics-" + uuid.uuid4().hex[:6]
    name = _name()
    with pytest.raises(InvalidStatus):
        async with connect(gateway.url, additional_headers={"Authorization": "Bearer wrong"}):
            pass
    async with _connect(gateway) as ws:
        await _hello(ws, name, queues=(queue,), concurrency=3)
    async with _connect(gateway) as ws:  # the same agent again: a reconnect
        agent = await _hello(ws, name, queues=(queue,), concurrency=3)
        dispatcher.submit([_spec(queue)])
        await agent.recv_type(p.Run)
        dispatcher.submit([_spec(queue, slots=5)])  # bigger than the agent: stays pending
        with urllib.request.urlopen(f"http://127.0.0.1:{gateway.port}/metrics", timeout=10) as r:
            text = r.read().decode()
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
               for fam in text_string_to_metric_families(text) for s in fam.samples}
    assert samples[("edgeexec_queue_slots_total", (("queue", queue),))] == 3
    assert samples[("edgeexec_queue_slots_used", (("queue", queue),))] == 1
    assert samples[("edgeexec_queue_pending_jobs", (("queue", queue),))] == 1
    assert samples[("edgeexec_agents_connected", ())] >= 1
    assert samples[("edgeexec_dispatch_latency_seconds_count", ())] >= 1
    assert samples[("edgeexec_frames_in_total", (("type", "hello"),))] >= 2
    assert samples[("edgeexec_frames_out_total", (("type", "run"),))] >= 1
    assert samples[("edgeexec_auth_failures_total", (("status", "403"),))] >= 1
    assert samples[("edgeexec_agent_reconnects_total", ())] >= 1
    assert "jwt-secret" not in text
