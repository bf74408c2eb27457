"""The edge backend of the dispatch interface: jobs go into Redis, gateways push them to agents.

Runs inside the Airflow scheduler, so it is synchronous (redis-py's blocking client) and every
call is a single round trip (script calls are pipelined). It never talks to an agent.
"""

from __future__ import annotations

import contextlib
import logging
import time
import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any, TypeVar

import redis

from edgeexec.dispatch import JobEvent, JobSpec, Orphan
from edgeexec.errors import StoreUnavailable
from edgeexec.protocol import JobState
from edgeexec.store import scripts
from edgeexec.store.clock import Clock, redis_time
from edgeexec.store.keys import Keys
from edgeexec.store.redis_url import connect

log = logging.getLogger(__name__)
EVENT_BATCH = 1000
REDIS_TIMEOUT_S = 10.0
"""A command that takes longer counts as failed (retried next loop) instead of hanging the scheduler."""
OVERSIZED_CHECK_MS = 15_000
R = TypeVar("R")
ADOPT_BATCH = 1000
"""Refs per adopt call: one script call blocks Redis for its whole length."""


def parse_event(fields: Mapping[str, str]) -> JobEvent:
    exit_raw = fields.get("exit", "")
    return JobEvent(
        job_id=fields["job"],
        ref=fields.get("ref", ""),
        state=JobState(fields["state"]),
        reason=fields.get("reason", ""),
        exit_code=int(exit_raw) if exit_raw.lstrip("-").isdigit() else None,
        where=fields.get("agent", ""),
        external_id=fields["job"],
    )


def _next_id(stream_id: str) -> str:
    ms, _, seq = stream_id.partition("-")
    return f"{ms}-{int(seq or 0) + 1}"


@contextlib.contextmanager
def _redis_errors(what: str) -> Iterator[None]:
    """Every Redis failure becomes StoreUnavailable, which the executor retries: not only lost
    connections but OOM, READONLY (a failover's old master), MISCONF, NOSCRIPT and LOADING too,
    none of which may end the scheduler's loop."""
    try:
        yield
    except redis.RedisError as exc:
        raise StoreUnavailable(f"Redis failed during {what}: {type(exc).__name__}: {exc}") from exc


def _expected_job_id(external_id: str | None) -> str:
    """The job id Airflow knows for a try ('' if none, or not one of ours)."""
    if not external_id:
        return ""
    try:
        return uuid.UUID(external_id).hex
    except ValueError:
        return ""


class RedisDispatcher:
    """Dispatcher over Redis; ``clock`` is injectable so tests control time."""

    def __init__(
        self,
        client: redis.Redis,
        keys: Keys,
        *,
        liveness_s: float,
        job_ttl_s: int,
        clock: Clock = redis_time,
    ) -> None:
        self.client = client
        self.keys = keys
        self.liveness_ms = int(liveness_s * 1000)
        self.ttl_ms = job_ttl_s * 1000
        self.clock = clock
        self.owner = ""
        self._last_event = "0-0"
        self._next_oversized = 0.0
        self._scripts = {name: client.register_script(scripts.source(name)) for name in scripts.SCRIPT_NAMES}

    @classmethod
    def from_url(cls, url: str, prefix: str, **kwargs: Any) -> RedisDispatcher:
        client = connect(url, decode_responses=True, health_check_interval=30, socket_timeout=REDIS_TIMEOUT_S,
                         socket_connect_timeout=REDIS_TIMEOUT_S, socket_keepalive=True)
        return cls(client, Keys(prefix), **kwargs)

    def _run(self, call: scripts.ScriptCall[R]) -> R:
        with _redis_errors(call.NAME):
            return call.parse(self._queue(call))

    def _queue(self, call: scripts.ScriptCall[Any], client: Any = None) -> Any:
        """The script's raw reply, or (with a pipeline as ``client``) the pipeline itself."""
        return self._scripts[call.NAME](keys=[], args=[self.keys.prefix, self.clock(), *call.argv()], client=client)

    # ------------------------------------------------------------------ Dispatcher protocol

    def start(self, owner: str) -> None:
        self.owner = owner
        with _redis_errors("start"):
            self.client.ping()

    def submit(self, jobs: Sequence[JobSpec]) -> None:
        if not jobs:
            return
        pipe = self.client.pipeline(transaction=False)
        for j in jobs:
            self._queue(scripts.Submit(j.job_id, j.ref, j.queue, j.slots, j.priority, self.owner, j.kind,
                                       j.workload_json, j.label), client=pipe)
        with _redis_errors("submit"):
            pipe.execute()

    def events(self) -> Iterable[JobEvent]:
        stream = self.keys.events(self.owner)
        out: list[JobEvent] = []
        while True:
            with _redis_errors("events"):
                batch: Any = self.client.xread({stream: self._last_event}, count=EVENT_BATCH)
            if not batch:
                break
            entries = batch[0][1]
            for entry_id, fields in entries:
                self._last_event = entry_id
                try:
                    out.append(parse_event(fields))
                except (KeyError, ValueError):
                    log.exception("dropping malformed event %s on %s", entry_id, stream)
            if len(entries) < EVENT_BATCH:
                break
        if out:
            with _redis_errors("events"):
                self.client.xtrim(stream, minid=_next_id(self._last_event), approximate=False)
        return out

    def cancel(self, ref: str, reason: str) -> None:
        self._run(scripts.Cancel(ref, reason, self.ttl_ms))

    def adopt(self, refs: Mapping[str, str | None]) -> Mapping[str, str]:
        """Edge jobs are found by ref in Redis; where Airflow stored the try's job id (pre-assigned
        or reported), only that job is adopted."""
        if not refs:
            return {}
        refs_in = [(ref, _expected_job_id(ext)) for ref, ext in refs.items()]
        adopted: dict[str, str] = {}
        for i in range(0, len(refs_in), ADOPT_BATCH):  # a dead scheduler may leave tens of thousands
            try:
                adopted.update(self._run(scripts.Adopt(self.owner, tuple(refs_in[i:i + ADOPT_BATCH]))))
            except StoreUnavailable:
                if not adopted:
                    raise
                # the earlier batches are this scheduler's now (their events come here): keep them,
                # and let Airflow reset the rest as not adopted
                log.exception("adopted %d of %d workload(s); Redis failed on the rest", len(adopted), len(refs_in))
                break
        return adopted

    def sweep(self) -> Sequence[Orphan]:
        reaped = self._run(scripts.Reap(self.liveness_ms, self.owner, self.ttl_ms))
        for name in reaped.lost:
            log.warning("agent %s sent no heartbeat for %.0f s: marked lost", name, self.liveness_ms / 1000)
        if time.monotonic() >= self._next_oversized:
            self._next_oversized = time.monotonic() + OVERSIZED_CHECK_MS / 1000
            self.report_oversized()
        return reaped.orphans

    def report_oversized(self) -> list[tuple[str, str, str]]:
        """Log (once per job) pending jobs no connected agent of their queue has the slots for."""
        found = self._run(scripts.Oversized())
        for job_id, ref, why in found:
            log.warning("job %s (%s) %s", job_id, ref, why)
        return found

    def fail(self, job_id: str, reason: str) -> None:
        self._run(scripts.Finish("", job_id, JobState.FAILED.value, reason, None, self.ttl_ms, 0))

    def stop(self, *, terminate: bool) -> None:
        self.client.close()
