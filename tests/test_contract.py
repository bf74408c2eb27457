"""The Dispatcher contract, run against every backend: edge (Redis + agents) and AWS Batch.

Each backend gets a *worker* that finishes jobs the way its real workers would: for edge, an
agent played through the same Lua scripts a gateway calls; for Batch, the stand-in compute
environment behind the real AWS API endpoint, told the outcome through the job's environment.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from typing import Any, Protocol

import pytest
import redis

from batchexec.dispatcher import BatchDispatcher
from edgeexec.airflow.redis_dispatcher import RedisDispatcher
from edgeexec.dispatch import Dispatcher, JobEvent, JobSpec
from edgeexec.protocol import JobState
from edgeexec.store.keys import Keys
from tests.conftest import BatchEndpoint
from tests.test_batch import _settings, standin_spec
from tests.test_store_lua import Lua


class Backend(Protocol):
    dispatcher: Dispatcher

    def spec(self, outcome: str) -> JobSpec: ...

    def work(self) -> None: ...


class EdgeBackend:
    def __init__(self, client: redis.Redis, keys: Keys) -> None:
        self.dispatcher = RedisDispatcher(client, keys, liveness_s=3600, job_ttl_s=60)
        self.lua = Lua(client, keys)
        self.lua.now = int(time.time() * 1000)
        self.outcomes: dict[str, str] = {}
        self.lua.register("worker", 4)

    def spec(self, outcome: str) -> JobSpec:
        job = uuid.uuid4().hex
        self.outcomes[job] = outcome
        return JobSpec(job, f"ti:{job}:1", "task", "default", 1, 0, "{}")

    def work(self) -> None:
        for job in list(self.lua.c.smembers(self.lua.keys.agent_jobs("worker"))):
            outcome = self.outcomes.get(job, "hang")
            if self.lua.c.hexists(self.lua.keys.job(job), "cancel"):
                outcome = "fail"  # an agent told to cancel terminates the job and reports it failed
            if outcome == "hang":
                continue
            self.lua("accept", "worker", job)
            self.lua.finish("worker", job, "success" if outcome == "ok" else "failed")


class BatchBackend:
    def __init__(self, endpoint: BatchEndpoint) -> None:
        self.dispatcher = BatchDispatcher(_settings(endpoint), lambda: endpoint.client)

    def spec(self, outcome: str) -> JobSpec:
        command = {"ok": ["true"], "fail": ["false"], "hang": ["sleep", "60"]}[outcome]
        return standin_spec(command)

    def work(self) -> None:
        return  # the stand-in compute environment runs the jobs


@pytest.fixture(params=["edge", "batch"])
def backend(request: pytest.FixtureRequest, keys: Keys) -> Iterator[Backend]:
    if request.param == "edge":
        client = redis.Redis.from_url(request.getfixturevalue("redis_server").url, decode_responses=True)
        b: Backend = EdgeBackend(client, keys)
    else:
        b = BatchBackend(request.getfixturevalue("batch_endpoint"))
    b.dispatcher.start(f"owner-{uuid.uuid4().hex[:6]}")
    yield b
    b.dispatcher.stop(terminate=True)


def _collect(b: Backend, until: Any, timeout: float = 60) -> list[JobEvent]:
    out: list[JobEvent] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        b.work()
        out += list(b.dispatcher.events())
        if until(out):
            return out
        time.sleep(0.1)
    raise AssertionError(f"condition not met within {timeout} s; events: {out}")


def _final(events: list[JobEvent], job_id: str) -> JobEvent | None:
    return next((e for e in events if e.job_id == job_id and e.state.terminal), None)


def test_jobs_end_in_the_state_their_worker_reports(backend: Backend) -> None:
    """A successful and a failing job each produce exactly one terminal event, with their ref."""
    ok, bad = backend.spec("ok"), backend.spec("fail")
    backend.dispatcher.submit([ok, bad])
    events = _collect(backend, lambda ev: _final(ev, ok.job_id) and _final(ev, bad.job_id))
    assert (_final(events, ok.job_id).state, _final(events, ok.job_id).ref) == (JobState.SUCCESS, ok.ref)
    assert _final(events, bad.job_id).state is JobState.FAILED
    assert sum(e.state.terminal for e in events) == 2


def test_events_are_delivered_once(backend: Backend) -> None:
    """What events() returned is not returned again."""
    spec = backend.spec("ok")
    backend.dispatcher.submit([spec])
    _collect(backend, lambda ev: _final(ev, spec.job_id))
    backend.work()
    assert not [e for e in backend.dispatcher.events() if e.job_id == spec.job_id]


def test_cancel_stops_a_job_without_success(backend: Backend) -> None:
    """A cancelled job ends failed or cancelled, never success."""
    spec = backend.spec("hang")
    backend.dispatcher.submit([spec])
    backend.work()
    backend.dispatcher.cancel(spec.ref, "revoked")
    events = _collect(backend, lambda ev: _final(ev, spec.job_id))
    assert _final(events, spec.job_id).state in (JobState.FAILED, JobState.CANCELLED)


def test_adopting_unknown_work_adopts_nothing(backend: Backend) -> None:
    """Refs the backend never saw are returned as not adopted."""
    assert backend.dispatcher.adopt({"ti:unknown:1": "no-such-external-id"}) == {}
