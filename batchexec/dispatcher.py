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

One job's trouble stays that job's: an exception or a malformed answer for one SubmitJob fails
that job only, and a DescribeJobs chunk that fails for a reason other than throttling or the
network is split in halves until the id it fails on is found. Throttling (SubmitJob's
TooManyRequestsException and friends) spends no attempt: the job waits and the submit rate halves.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError, HTTPClientError, NoCredentialsError
from botocore.exceptions import ConnectionError as AwsConnectionError
from tenacity import RetryCallState, Retrying, wait_exponential_jitter

from batchexec.errors import BatchConfigError, SubmitError
from batchexec.explain import Cause, advice, explain
from batchexec.kwargs import command_for, submit_kwargs
from batchexec.settings import BatchSettings
from batchexec.throttle import SubmitLimiter
from edgeexec.dispatch import JobEvent, JobSpec, Orphan
from edgeexec.protocol import JobState

log = logging.getLogger(__name__)
DESCRIBE_CHUNK = 100
MISSING_POLLS_BEFORE_LOST = 3
THROTTLING = frozenset({"Throttling", "ThrottlingException", "TooManyRequestsException", "RequestLimitExceeded"})
CREDENTIALS = frozenset({"ExpiredToken", "ExpiredTokenException", "UnrecognizedClientException",
                         "InvalidClientTokenId", "InvalidSignatureException"})
DENIED = frozenset({"AccessDenied", "AccessDeniedException"})
_BACKOFF = wait_exponential_jitter(initial=1, max=120)
STATUSES = frozenset({"SUBMITTED", "PENDING", "RUNNABLE", "STARTING", "RUNNING", "SUCCEEDED", "FAILED"})


def backoff_seconds(attempt: int) -> float:
    """Delay before attempt ``attempt + 1`` (tenacity's exponential backoff with jitter)."""
    state = RetryCallState(Retrying(), fn=None, args=(), kwargs={})
    state.attempt_number = attempt
    return float(_BACKOFF(state))


def _code_status(exc: ClientError) -> tuple[str, int]:
    code = exc.response.get("Error", {}).get("Code", "")
    return code, int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)


def _throttled(exc: ClientError) -> bool:
    code, status = _code_status(exc)
    return code in THROTTLING or status == 429


def _transient(exc: Exception) -> bool:
    """Throttling, a 5xx or the network: worth the same call again later, for every job."""
    if isinstance(exc, ClientError):
        return _throttled(exc) or _code_status(exc)[1] >= 500
    return isinstance(exc, (AwsConnectionError, HTTPClientError))


def _systemic(exc: Exception) -> bool:
    """A failure of every call, not of one job id: transient, or credentials/permissions."""
    if isinstance(exc, ClientError) and _code_status(exc)[0] in CREDENTIALS | DENIED:
        return True
    return _transient(exc) or isinstance(exc, NoCredentialsError)


def classify(exc: Exception) -> SubmitError:
    if isinstance(exc, ClientError):
        code, status = _code_status(exc)
        message = exc.response.get("Error", {}).get("Message", str(exc))
        if code in CREDENTIALS:
            return SubmitError(f"AWS credentials refused ({code}): {message}", retryable=True, reload_credentials=True)
        return SubmitError(f"SubmitJob failed ({code or status}): {message}", retryable=_transient(exc),
                           throttled=_throttled(exc))
    # a network error is worth retrying; a parameter botocore refuses (a bad executor_config value) is not
    return SubmitError(f"SubmitJob failed: {type(exc).__name__}: {exc}", retryable=_transient(exc))


@dataclass
class _Job:
    job_id: str
    ref: str
    spec: JobSpec | None
    attempts: int = 0
    throttled: int = 0
    next_try: float = 0.0
    batch_id: str = ""
    status: str = ""
    missing: int = 0
    runnable_since: float | None = None
    waiting_reason: str = ""
    describe_error: str = ""
    terminating: bool = False
    """TerminateJob was sent (revoked, failed, stopped): its end is reported, never resubmitted."""


def _entries(reply: Any) -> list[dict[str, Any]]:
    """The well-formed entries of a DescribeJobs answer; anything else is logged and left out (the
    jobs it should have described count as missing, and only they)."""
    jobs = reply.get("jobs") if isinstance(reply, Mapping) else None
    if not isinstance(jobs, list):
        log.warning("DescribeJobs answered without a jobs list: %.300r", reply)
        return []
    good = [d for d in jobs if isinstance(d, dict) and isinstance(d.get("jobId"), str) and d.get("status") in STATUSES]
    if len(good) != len(jobs):
        log.warning("DescribeJobs: %d malformed entr(ies) ignored", len(jobs) - len(good))
    return good


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
        self._limiter = SubmitLimiter(settings.submit_rate)

    # ------------------------------------------------------------------ Dispatcher protocol

    def start(self, owner: str) -> None:
        self.owner = owner
        self.client = self.client_factory()
        if self.settings.check_health_on_startup:
            self._health_check()

    def _health_check(self) -> None:
        """DescribeJobs on an id that cannot exist proves the endpoint, credentials and region;
        DescribeJobQueues proves every configured job queue exists and can take jobs."""
        try:
            self.client.describe_jobs(jobs=["edgeexec-health-check"])
        except (ClientError, BotoCoreError) as exc:
            raise BatchConfigError(
                f"AWS Batch health check failed in {self.settings.region_name}: {exc}. Check the "
                f"[aws_batch_executor] aws_conn_id connection ({self.settings.aws_conn_id}) and region_name, "
                "or set check_health_on_startup = False"
            ) from exc
        self._check_queues()
        log.info("AWS Batch reachable in %s (queue %s)", self.settings.region_name, self.settings.job_queue)

    def _check_queues(self) -> None:
        wanted = sorted({self.settings.job_queue, *(r.job_queue for r in self.settings.routes.values())})
        try:
            found = self.client.describe_job_queues(jobQueues=wanted).get("jobQueues", [])
        except (ClientError, BotoCoreError) as exc:  # e.g. no batch:DescribeJobQueues permission
            log.warning("could not check the job queues %s (%s); submitting anyway", wanted, exc)
            return
        usable = {q.get(k) for q in found if q.get("state") == "ENABLED" and q.get("status") in ("VALID", None)
                  for k in ("jobQueueName", "jobQueueArn")}
        bad = [q for q in wanted if q not in usable]
        if bad:
            raise BatchConfigError(
                f"AWS Batch job queue(s) {bad} do not exist in {self.settings.region_name} or are not ENABLED "
                "and VALID: fix [aws_batch_executor] job_queue / queue_map, or set check_health_on_startup = False")

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
        found, _ = self._describe(list(wanted))
        for batch_id, desc in found.items():
            if batch_id not in wanted:
                continue
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
        due = sorted((j for j in self._queue if j.next_try <= now), key=lambda j: j.next_try)
        for job in due:
            if not self._limiter.take(now):
                break  # the rest go on a later loop, at the submit rate
            self._queue.remove(job)
            self._submit_one(job)

    def _kwargs(self, spec: JobSpec) -> dict[str, Any]:
        return submit_kwargs(
            job_name=self.settings.job_name, job_queue=self.settings.job_queue,
            job_definition=self.settings.job_definition, extra=self.settings.extra_submit_kwargs,
            executor_config=spec.executor_config, command=command_for(spec.workload_json),
            mapped=self.settings.mapped_kwargs.get(spec.queue))

    def _submit_one(self, job: _Job) -> None:
        assert job.spec is not None
        try:
            kwargs = self._kwargs(job.spec)
        except BatchConfigError as exc:
            self._emit(job, JobState.FAILED, str(exc))
            return
        except Exception as exc:  # an executor_config of the wrong shape: that task fails, the loop goes on
            log.exception("SubmitJob arguments for %s could not be built", job.ref)
            self._emit(job, JobState.FAILED, f"the task's executor_config cannot be used ({type(exc).__name__}: "
                                             f"{exc}); give it SubmitJob's shapes (see docs/batch.md)")
            return
        job.attempts += 1
        try:
            reply = self.client.submit_job(**kwargs)
        except (ClientError, BotoCoreError) as exc:
            self._retry_or_fail(job, classify(exc))
            return
        except Exception as exc:  # one job's poison must not stop the others (logged)
            log.exception("SubmitJob for %s raised", job.ref)
            self._emit(job, JobState.FAILED, f"SubmitJob failed: {type(exc).__name__}: {exc}")
            return
        batch_id = reply.get("jobId") if isinstance(reply, Mapping) else None
        if not isinstance(batch_id, str) or not batch_id:
            # not retried: AWS may have created the job, and a second one would run the try twice
            log.error("SubmitJob for %s answered without a job id: %.300r", job.ref, reply)
            self._emit(job, JobState.FAILED, f"SubmitJob answered without a job id: {str(reply)[:200]}")
            return
        self._limiter.succeeded()
        job.batch_id, job.status, job.missing = batch_id, "SUBMITTED", 0
        self._active[batch_id] = job
        self._interval, self._next_poll = self.settings.poll_interval_min, min(self._next_poll, self.clock() + 1)
        log.info("submitted %s as AWS Batch job %s to %s (attempt %d)", job.ref, batch_id, kwargs["jobQueue"],
                 job.attempts)
        self._emit(job, JobState.PENDING, "")

    def _retry_or_fail(self, job: _Job, err: SubmitError) -> None:
        if err.reload_credentials:
            self.client = self.client_factory()
        if err.throttled:
            # AWS pacing the account, not the job failing: no attempt spent, the whole rate slows
            job.attempts -= 1
            job.throttled += 1
            self._limiter.throttled()
            self._requeue(job, backoff_seconds(min(job.throttled, 8)), f"{err}; throttled, submit rate now "
                          f"{self._limiter.current:.1f}/s")
            return
        if err.retryable and job.attempts < self.settings.max_submit_job_attempts:
            self._requeue(job, backoff_seconds(job.attempts), f"{err}; attempt {job.attempts + 1} of "
                          f"{self.settings.max_submit_job_attempts}")
            return
        self._emit(job, JobState.FAILED, f"{err} (after {job.attempts} attempt(s))")

    def _requeue(self, job: _Job, delay: float, why: str) -> None:
        log.warning("%s: %s in %.1f s", job.ref, why, delay)
        job.next_try = self.clock() + delay
        job.status, job.runnable_since, job.waiting_reason = "", None, ""
        self._queue.append(job)

    # ------------------------------------------------------------------ status

    def _describe(self, ids: list[str]) -> tuple[dict[str, dict[str, Any]], dict[str, str]]:
        """(descriptions by id, errors by id). Throttling or the network raise (every job waits);
        any other failure of a chunk is narrowed down to the id(s) it fails on."""
        found: dict[str, dict[str, Any]] = {}
        broken: dict[str, str] = {}
        for i in range(0, len(ids), DESCRIBE_CHUNK):
            self._describe_chunk(ids[i:i + DESCRIBE_CHUNK], found, broken)
        return found, broken

    def _describe_chunk(self, ids: list[str], found: dict[str, dict[str, Any]], broken: dict[str, str]) -> None:
        try:
            reply = self.client.describe_jobs(jobs=ids)
        except Exception as exc:  # narrowed down below; what fails every call is re-raised
            if _systemic(exc):
                if isinstance(exc, ClientError) and _code_status(exc)[0] in CREDENTIALS:
                    self.client = self.client_factory()
                raise
            if len(ids) == 1:
                log.warning("DescribeJobs fails whenever job %s is in it: %s", ids[0], exc)
                broken[ids[0]] = f"{type(exc).__name__}: {exc}"
                return
            mid = len(ids) // 2
            self._describe_chunk(ids[:mid], found, broken)
            self._describe_chunk(ids[mid:], found, broken)
            return
        found.update((d["jobId"], d) for d in _entries(reply))

    def _poll(self) -> None:
        now = self.clock()
        if not self._active or now < self._next_poll:
            return
        try:
            found, broken = self._describe(list(self._active))
        except (ClientError, BotoCoreError) as exc:  # only systemic ones get here: _describe_chunk
            log.warning("DescribeJobs failed (will retry): %s", exc)
            self._interval = min(self._interval * 2, self.settings.poll_interval_max)
            self._next_poll = now + self._interval
            return
        changed = False
        for batch_id, job in list(self._active.items()):
            desc = found.get(batch_id)
            job.describe_error = broken.get(batch_id, "")
            changed |= self._missing(job) if desc is None else self._update(job, desc)
        changed |= self._unstick(now)
        self._interval = (self.settings.poll_interval_min if changed
                          else min(self._interval * 2, self.settings.poll_interval_max))
        self._next_poll = now + self._interval

    def _missing(self, job: _Job) -> bool:
        job.missing += 1
        if job.missing >= MISSING_POLLS_BEFORE_LOST:
            del self._active[job.batch_id]
            why = (f"DescribeJobs fails for job {job.batch_id}: {job.describe_error}" if job.describe_error
                   else f"AWS Batch no longer knows job {job.batch_id}")
            self._emit(job, JobState.FAILED, why)
            return True
        return False

    def _update(self, job: _Job, desc: Mapping[str, Any]) -> bool:
        status = str(desc.get("status", ""))
        job.missing = 0
        if status == "RUNNABLE":
            job.waiting_reason = str(desc.get("statusReason") or "")
        if status == job.status:
            return False
        job.status = status
        if status == "RUNNABLE":
            job.runnable_since = self.clock()
        elif status == "RUNNING":
            self._emit(job, JobState.RUNNING, "")
        elif status == "SUCCEEDED":
            del self._active[job.batch_id]
            self._emit(job, JobState.SUCCESS, "")
        elif status == "FAILED":
            del self._active[job.batch_id]
            self._failed(job, desc)
        return True

    def _unstick(self, now: float) -> bool:
        """Jobs RUNNABLE past ``runnable_timeout`` (nothing placed them): terminated, then submitted
        again from the attempt budget or failed, saying so."""
        limit = self.settings.runnable_timeout
        stuck = [j for j in self._active.values() if limit > 0 and j.status == "RUNNABLE"
                 and j.runnable_since is not None and now - j.runnable_since >= limit]
        for job in stuck:
            waited = now - (job.runnable_since or now)
            reason = (f"never started: RUNNABLE for {waited:.0f} s (runnable_timeout {limit:g} s)"
                      f"{': ' + job.waiting_reason if job.waiting_reason else ''}. {advice(Cause.NEVER_STARTED)}")
            if not self._terminate(job, reason):
                continue  # still placeable: a second job now could run the try twice; next poll retries
            del self._active[job.batch_id]
            if job.spec is not None and job.attempts < self.settings.max_submit_job_attempts:
                job.terminating = False
                self._requeue(job, backoff_seconds(job.attempts), f"{reason}; submitting again")
            else:
                self._emit(job, JobState.FAILED, f"{reason} (after {job.attempts} attempt(s))")
        return bool(stuck)

    def _failed(self, job: _Job, desc: Mapping[str, Any]) -> None:
        failure = explain(desc)
        reason = f"{failure.text}. {advice(failure.cause)}"
        again = not (failure.started or job.terminating or failure.cause is Cause.TERMINATED)
        if job.spec is not None and again and job.attempts < self.settings.max_submit_job_attempts:
            self._requeue(job, backoff_seconds(job.attempts),
                          f"AWS Batch failed job {job.batch_id} before it started ({reason}); submitting again")
            return
        self._emit(job, JobState.FAILED, reason, failure.exit_code)

    def _terminate(self, job: _Job, reason: str) -> bool:
        """TerminateJob; whether AWS took it."""
        job.terminating = True
        try:
            self.client.terminate_job(jobId=job.batch_id, reason=reason[:200])
        except (ClientError, BotoCoreError) as exc:
            log.warning("TerminateJob %s failed: %s", job.batch_id, exc)
            return False
        finally:
            self._next_poll = 0.0
        return True

    def _emit(self, job: _Job, state: JobState, reason: str, exit_code: int | None = None) -> None:
        self._events.append(JobEvent(job_id=job.job_id, ref=job.ref, state=state, reason=reason,
                                     exit_code=exit_code, where=job.batch_id, external_id=job.batch_id))
