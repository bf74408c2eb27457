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
from edgeexec.airflow.redis_dispatcher import RedisDispatcher
from edgeexec.dispatch import JobSpec
from edgeexec.localstack.processes import Proc, free_port, wait_for
from edgeexec.store.keys import Keys
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
           "AIRFLOW__EDGEEXEC__HELLO_TIMEOUT": "1", "AIRFLOW__EDGEEXEC__MAX_FRAME_BYTES": "65536",
           "AIRFLOW__EDGEEXEC__METRICS_INTERVAL": "0"}  # every scrape reads the fleet: the test below checks it
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
        done = p.JobStatus(run.job, p.JobState.SUCCESS)
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


async def _running(agent: RawAgent, dispatcher: RedisDispatcher, queue: str, spec: JobSpec | None = None) -> str:
    dispatcher.submit([spec or _spec(queue)])
    run = await agent.recv_type(p.Run)
    await agent.send(p.Accepted(job=run.job))
    await agent.recv_type(p.Start)
    return str(run.job)


@pytest.mark.airflow  # reads the stored log through the API server's reader, which loads Airflow config
async def test_logs_are_stored_byte_exact_whatever_the_task_writes(
        gateway: Gateway, dispatcher: RedisDispatcher, redis_server: Any, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Multi-byte characters split at a 64 KiB piece boundary, invalid UTF-8 and arbitrary bytes go
    through the agent's tailer and the gateway unchanged; a resent piece is not stored twice, and
    Airflow's log reader shows the log (invalid bytes replaced) instead of failing on it."""
    import os

    from agent.logtail import LogTailer
    from edgeexec.airflow import task_logs
    from edgeexec.dispatch import task_ref

    content = b"start\n" + "\u65e5\u672c\u8a9e\u00e9".encode() * 30_000 + b"\xff\xfe\x80 bad\n" + os.urandom(50_000) + b"\n"
    (tmp_path / "t").mkdir()
    (tmp_path / "t" / "1.log").write_bytes(content)
    ti_id, queue = uuid.uuid4(), "bytes-" + uuid.uuid4().hex[:6]
    job = uuid.uuid4().hex
    async with _connect(gateway) as ws:
        agent = await _hello(ws, _name(), queues=(queue,))
        await _running(agent, dispatcher, queue, JobSpec(job, task_ref(ti_id, 1), "task", queue, 1, 0, "{}"))
        tailer = LogTailer(str(tmp_path))
        tailer.max_piece = p.log_piece_limit(65536)  # this gateway's max_frame_bytes, as welcome says
        tailer.watch(job, orjson.dumps({"log_path": "t/1.log"}).decode())
        chunks = tailer.chunks(job, final=True)
        assert len(chunks) > 2
        for chunk in [*chunks, chunks[1]]:  # the second piece again, as after a reconnect
            await agent.send(chunk)
        await agent.send(p.StateReport(job=job, state=p.JobState.SUCCESS, exit_code=0))
        await agent.recv_type(p.Ack)
    raw = redis.Redis.from_url(redis_server.url)
    assert raw.get(gateway.keys.log(job)) == content
    raw.close()
    monkeypatch.setenv("AIRFLOW__EDGEEXEC__REDIS_URL", redis_server.url)
    monkeypatch.setenv("AIRFLOW__EDGEEXEC__REDIS_PREFIX", gateway.keys.prefix)
    _, (text,) = task_logs.read(ti_id, 1)
    assert text.startswith("start\n\u65e5\u672c") and "\ufffd\ufffd\ufffd bad" in text


async def test_a_lost_cancel_is_redelivered_on_the_next_heartbeat(
        gateway: Gateway, dispatcher: RedisDispatcher, rclient: redis.Redis) -> None:
    """The scheduler's cancel notice goes nowhere (as while a gateway resubscribes): the agent is
    told on its next heartbeat, and on every one after it until it reports the job finished."""
    queue = "cancel-" + uuid.uuid4().hex[:6]
    async with _connect(gateway) as ws:
        agent = await _hello(ws, _name(), queues=(queue,))
        spec = _spec(queue)
        job = await _running(agent, dispatcher, queue, spec)
        key = gateway.keys.agent(agent.name)
        gw = rclient.hget(key, "gw")
        rclient.hset(key, "gw", "nowhere")  # the notice is published where nobody listens
        dispatcher.cancel(spec.ref, "revoked by the scheduler")
        rclient.hset(key, "gw", gw)
        for _ in range(2):
            await agent.send(p.Heartbeat(used=1, state="running"))
            cancel = await agent.recv_type(p.Cancel)
            assert (cancel.job, cancel.reason) == (job, "revoked by the scheduler")
        await agent.send(p.StateReport(job=job, state=p.JobState.FAILED, exit_code=-15, reason="cancelled"))
        await agent.recv_type(p.Ack)
        await agent.send(p.Heartbeat(used=0, state="idle"))
        with pytest.raises(TimeoutError):
            await agent.recv_type(p.Cancel, timeout=2)


async def test_cancels_and_failures_decided_while_away_reach_the_agent_at_reconnect(
        gateway: Gateway, dispatcher: RedisDispatcher) -> None:
    """While the agent is disconnected one of its jobs is revoked and another failed by the
    executor: at reconnect both are cancelled on the agent, neither keeps running uncounted."""
    name, instance, queue = _name(), uuid.uuid4().hex, "away-" + uuid.uuid4().hex[:6]
    revoked, failed = _spec(queue), _spec(queue)
    async with _connect(gateway) as ws:
        agent = await _hello(ws, name, queues=(queue,), instance=instance)
        await _running(agent, dispatcher, queue, revoked)
        await _running(agent, dispatcher, queue, failed)
    dispatcher.cancel(revoked.ref, "revoked while away")
    dispatcher.fail(failed.job_id, "worker lost")
    async with _connect(gateway) as ws:
        jobs = (p.JobStatus(revoked.job_id, p.JobState.RUNNING), p.JobStatus(failed.job_id, p.JobState.RUNNING))
        agent = await _hello(ws, name, queues=(queue,), instance=instance, jobs=jobs)
        cancelled = {(await agent.recv_type(p.Cancel)).job for _ in range(2)}
    assert cancelled == {revoked.job_id, failed.job_id}


async def test_a_failing_notice_handler_does_not_cost_the_next_notices(
        gateway: Gateway, rclient: redis.Redis) -> None:
    """A notice the gateway cannot handle is logged and skipped; the subscription, and the notice
    right behind it, are unaffected."""
    async with _connect(gateway) as ws:
        agent = await _hello(ws, _name())
        gw = rclient.hget(gateway.keys.agent(agent.name), "gw")
        pipe = rclient.pipeline(transaction=False)
        pipe.publish(gateway.keys.gateway_channel(gw), f"cmd\t{agent.name}\t{{not json")
        pipe.publish(gateway.keys.gateway_channel(gw),
                     f"cmd\t{agent.name}\t{p.encode(p.Command(action='maintenance_on', comments='c')).decode()}")
        pipe.execute()
        command = await agent.recv_type(p.Command, timeout=5)
        assert command.action == "maintenance_on"


async def test_liveness_follows_the_gateways_window_not_the_schedulers(
        gateway: Gateway, redis_server: Any) -> None:
    """A scheduler configured with a far shorter liveness than the gateways (a mismatched
    heartbeat_interval) sweeps every 0.1 s: an agent heartbeating at its gateway's interval is
    never declared lost, because each agent's window is the one recorded at its registration."""
    hasty = RedisDispatcher.from_url(redis_server.url, gateway.keys.prefix, liveness_s=0.2, job_ttl_s=600)
    hasty.start("hasty")
    try:
        async with _connect(gateway) as ws:
            agent = await _hello(ws, _name())
            for _ in range(30):
                if _ % 10 == 0:
                    await agent.send(p.Heartbeat(used=0, state="idle"))
                assert agent.name not in {o.agent for o in hasty.sweep()}
                await asyncio.sleep(0.1)
            assert hasty.client.hget(gateway.keys.agent(agent.name), "connected") == "1"
    finally:
        hasty.stop(terminate=False)
