"""The AWS Batch backend of the dispatch interface.

Theory of operation
-------------------
Everything runs inside the scheduler's heartbeat, so nothing here sleeps. ``submit`` queues jobs
and sends every *due* SubmitJob at once (one call per attempt); a retryable failure (throttling,
5xx, network, expired credentials) schedules the next attempt with tenacity's exponential backoff
with jitter instead of waiting for it. A job Batch fails before its container started (capacity,
host lost) is submitted again from the same budget (``max_submit_job_attempts``).

Status comes from DescribeJobs in chunks of at most 100 ids, at an interval that starts at
``poll_interval_min`` after any change and doubles up to ``poll_interval_max`` while nothing
changes, rather than on every scheduler loop.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError
from tenacity import RetryCallState, Retrying, wait_exponential_jitter

from batchexec.errors import BatchConfigError, SubmitError
from batchexec.kwargs import command_for, submit_kwargs
from batchexec.settings import BatchSettings
from edgeexec.dispatch import JobEvent, JobSpec, Orphan
from edgeexec.protocol import JobState

log = logging.getLogger(__name__)
DESCRIBE_CHUNK = 100
MISSING_POLLS_BEFORE_LOST = 3
THROTTLING = frozenset({"Throttling", "ThrottlingException", "TooManyRequestsException", "RequestLimitExceeded"})
CREDENTIALS = frozenset({"ExpiredToken", "ExpiredTokenException", "UnrecognizedClientException",
                         "InvalidClientTokenId", "InvalidSignatureException"})
_BACKOFF = wait_exponential_jitter(initial=1, max=120)


def backoff_seconds(attempt: int) -> float:
    """Delay before attempt ``attempt + 1`` (tenacity's exponential backoff with jitter)."""
    state = RetryCallState(Retrying(), fn=None, args=(), kwargs={})
    state.attempt_number = attempt
    return float(_BACKOFF(state))


def classify(exc: Exception) -> SubmitError:
    if isinstance(exc, ClientError):
        code = exc.response.get("Error", {}).get("Code", "")
        status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
        message = exc.response.get("Error", {}).get("Message", str(exc))
        if code in CREDENTIALS:
            return SubmitError(f"AWS credentials refused ({code}): {message}", retryable=True, reload_credentials=True)
        retryable = code in THROTTLING or status >= 500
        return SubmitError(f"SubmitJob failed ({code or status}): {message}", retryable=retryable)
    return SubmitError(f"SubmitJob failed: {exc}", retryable=True)


@dataclass
class _Job:
    job_id: str
    ref: str
    spec: JobSpec | None
    attempts: int = 0
    next_try: float = 0.0
    batch_id: str = ""
    status: str = ""
    missing: int = 0


def _never_started(desc: Mapping[str, Any]) -> bool:
    if desc.get("startedAt"):
        return False
    return not any(a.get("startedAt") or (a.get("container") or {}).get("exitCode") is not None
                   for a in desc.get("attempts") or [])


def _exit_code(desc: Mapping[str, Any]) -> int | None:
    """The container's exit code: on the job, or on its last attempt (both appear in AWS's answer)."""
    code = (desc.get("container") or {}).get("exitCode")
    attempts = desc.get("attempts") or []
    if code is None and attempts:
        code = (attempts[-1].get("container") or {}).get("exitCode")
    return None if code is None else int(code)


def _failure_reason(desc: Mapping[str, Any]) -> str:
    parts = [desc.get("statusReason") or ""]
    container = desc.get("container") or {}
    if container.get("reason"):
        parts.append(container["reason"])
    code = _exit_code(desc)
    if code is not None:
        parts.append(f"exit code {code}")
    return "; ".join(p for p in parts if p) or "AWS Batch reported the job FAILED"


class BatchDispatcher:
    def __init__(self, settings: BatchSettings, client_factory: Callable[[], Any],
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.settings = settings
        self.client_factory = client_factory
        self.clock = clock
        self.client: Any = None
        self.owner = ""
        self._queue: list[_Job] = []
        self._active: dict[str, _Job] = {}
        self._events: list[JobEvent] = []
        self._interval = settings.poll_interval_min
        self._next_poll = 0.0

    # ------------------------------------------------------------------ Dispatcher protocol

    def start(self, owner: str) -> None:
        self.owner = owner
        self.client = self.client_factory()
        if self.settings.check_health_on_startup:
            self._health_check()

    def _health_check(self) -> None:
        """DescribeJobs on an id that cannot exist: proves the endpoint, credentials and region."""
        try:
            self.client.describe_jobs(jobs=["edgeexec-health-check"])
        except (ClientError, BotoCoreError) as exc:
            raise BatchConfigError(
                f"AWS Batch health check failed in {self.settings.region_name}: {exc}. Check the "
                f"[aws_batch_executor] aws_conn_id connection ({self.settings.aws_conn_id}) and region_name, "
                "or set check_health_on_startup = False"
            ) from exc
        log.info("AWS Batch reachable in %s (queue %s)", self.settings.region_name, self.settings.job_queue)

    def submit(self, jobs: Sequence[JobSpec]) -> None:
        self._queue.extend(_Job(job_id=s.job_id, ref=s.ref, spec=s) for s in jobs)
        self._submit_due()

    def events(self) -> Iterable[JobEvent]:
        self._submit_due()
        self._poll()
        out, self._events = self._events, []
        return out

    def cancel(self, ref: str, reason: str) -> None:
        for job in [j for j in self._queue if j.ref == ref]:
            self._queue.remove(job)
            self._emit(job, JobState.CANCELLED, reason)
        for job in [j for j in self._active.values() if j.ref == ref]:
            self._terminate(job, reason)

    def adopt(self, refs: Mapping[str, str | None]) -> Mapping[str, str]:
        wanted = {ext: ref for ref, ext in refs.items() if ext}
        adopted: dict[str, str] = {}
        for desc in self._describe(list(wanted)):
            batch_id = desc["jobId"]
            job = _Job(job_id=batch_id, ref=wanted[batch_id], spec=None, batch_id=batch_id)
            self._active[batch_id] = job
            adopted[job.ref] = job.job_id
            self._update(job, desc)
        self._next_poll = 0.0
        return adopted

    def sweep(self) -> Sequence[Orphan]:
        return []  # AWS Batch owns the compute: there is no worker that can go silent on us

    def fail(self, job_id: str, reason: str) -> None:
        for job in [j for j in self._active.values() if j.job_id == job_id]:
            self._terminate(job, reason)

    def stop(self, *, terminate: bool) -> None:
        if terminate:
            for job in list(self._active.values()):
                self._terminate(job, "scheduler terminated")

    # ------------------------------------------------------------------ submission

    def _submit_due(self) -> None:
        now = self.clock()
        due = [j for j in self._queue if j.next_try <= now]
        for job in due:
            self._queue.remove(job)
            self._submit_one(job)

    def _submit_one(self, job: _Job) -> None:
        assert job.spec is not None
        try:
            kwargs = submit_kwargs(
                job_name=self.settings.job_name, job_queue=self.settings.job_queue,
                job_definition=self.settings.job_definition, extra=self.settings.extra_submit_kwargs,
                executor_config=job.spec.executor_config, command=command_for(job.spec.workload_json))
        except BatchConfigError as exc:
            self._emit(job, JobState.FAILED, str(exc))
            return
        job.attempts += 1
        try:
            batch_id = self.client.submit_job(**kwargs)["jobId"]
        except (ClientError, BotoCoreError) as exc:
            self._retry_or_fail(job, classify(exc))
            return
        job.batch_id, job.status, job.missing = batch_id, "SUBMITTED", 0
        self._active[batch_id] = job
        self._interval, self._next_poll = self.settings.poll_interval_min, min(self._next_poll, self.clock() + 1)
        log.info("submitted %s as AWS Batch job %s (attempt %d)", job.ref, batch_id, job.attempts)
        self._emit(job, JobState.PENDING, "")

    def _retry_or_fail(self, job: _Job, err: SubmitError) -> None:
        if err.reload_credentials:
            self.client = self.client_factory()
        if err.retryable and job.attempts < self.settings.max_submit_job_attempts:
            delay = backoff_seconds(job.attempts)
            log.warning("%s: %s; attempt %d of %d in %.1f s", job.ref, err, job.attempts + 1,
                        self.settings.max_submit_job_attempts, delay)
            job.next_try = self.clock() + delay
            self._queue.append(job)
            return
        self._emit(job, JobState.FAILED, f"{err} (after {job.attempts} attempt(s))")

    # ------------------------------------------------------------------ status

    def _describe(self, ids: list[str]) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for i in range(0, len(ids), DESCRIBE_CHUNK):
            out += self.client.describe_jobs(jobs=ids[i:i + DESCRIBE_CHUNK]).get("jobs", [])
        return out

    def _poll(self) -> None:
        now = self.clock()
        if not self._active or now < self._next_poll:
            return
        try:
            found = {d["jobId"]: d for d in self._describe(list(self._active))}
        except (ClientError, BotoCoreError) as exc:
            log.warning("DescribeJobs failed (will retry): %s", exc)
            self._next_poll = now + self._interval
            return
        changed = False
        for batch_id, job in list(self._active.items()):
            desc = found.get(batch_id)
            changed |= self._missing(job) if desc is None else self._update(job, desc)
        self._interval = (self.settings.poll_interval_min if changed
                          else min(self._interval * 2, self.settings.poll_interval_max))
        self._next_poll = now + self._interval

    def _missing(self, job: _Job) -> bool:
        job.missing += 1
        if job.missing >= MISSING_POLLS_BEFORE_LOST:
            del self._active[job.batch_id]
            self._emit(job, JobState.FAILED, f"AWS Batch no longer knows job {job.batch_id}")
            return True
        return False

    def _update(self, job: _Job, desc: Mapping[str, Any]) -> bool:
        status = str(desc.get("status", ""))
        if status == job.status:
            return False
        job.status, job.missing = status, 0
        if status == "RUNNING":
            self._emit(job, JobState.RUNNING, "")
        elif status == "SUCCEEDED":
            del self._active[job.batch_id]
            self._emit(job, JobState.SUCCESS, "")
        elif status == "FAILED":
            del self._active[job.batch_id]
            self._failed(job, desc)
        return True

    def _failed(self, job: _Job, desc: Mapping[str, Any]) -> None:
        reason = _failure_reason(desc)
        if job.spec is not None and _never_started(desc) and job.attempts < self.settings.max_submit_job_attempts:
            log.warning("%s: AWS Batch failed job %s before it started (%s); submitting again", job.ref,
                        job.batch_id, reason)
            job.next_try = self.clock() + backoff_seconds(job.attempts)
            job.status = ""
            self._queue.append(job)
            return
        self._emit(job, JobState.FAILED, reason, _exit_code(desc))

    def _terminate(self, job: _Job, reason: str) -> None:
        try:
            self.client.terminate_job(jobId=job.batch_id, reason=reason[:200])
        except (ClientError, BotoCoreError) as exc:
            log.warning("TerminateJob %s failed: %s", job.batch_id, exc)
        self._next_poll = 0.0

    def _emit(self, job: _Job, state: JobState, reason: str, exit_code: int | None = None) -> None:
        self._events.append(JobEvent(job_id=job.job_id, ref=job.ref, state=state, reason=reason,
                                     exit_code=exit_code, where=job.batch_id, external_id=job.batch_id))
