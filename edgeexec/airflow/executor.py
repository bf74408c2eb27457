"""Airflow executors over the dispatch interface: the generic DispatchExecutor and EdgeExecutor.

The executor runs inside the scheduler. It never waits on a worker: ``_process_workloads`` hands
job specs to the dispatcher in one round trip and ``sync`` turns the dispatcher's events into
Airflow states. A backend outage (Redis down) is logged and retried on the next heartbeat; the
scheduler loop never dies because of it.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from airflow.configuration import conf
from airflow.executors.base_executor import BaseExecutor
from airflow.executors.workloads.types import state_class_for_key

from edgeexec.config.lookup import airflow_lookup
from edgeexec.config.settings import SECTION, ExecutorSettings
from edgeexec.dispatch import Dispatcher, JobEvent, JobSpec, Orphan, spec_for, task_ref, ti_id_of
from edgeexec.errors import StoreUnavailable
from edgeexec.protocol import JobState

if TYPE_CHECKING:
    from airflow.models.taskinstance import TaskInstance


@dataclass(frozen=True, slots=True)
class _Tracked:
    key: Any
    ref: str


class DispatchExecutor(BaseExecutor):  # type: ignore[misc]
    """Airflow workloads -> JobSpecs -> a Dispatcher; JobEvents -> Airflow states."""

    supports_callbacks = True
    is_local = False
    serve_logs = False
    pre_assigns_external_executor_id = True
    """The scheduler stores each task's job id in the update that marks it QUEUED (spec_for uses it)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.dispatcher: Dispatcher | None = None
        self._jobs: dict[str, _Tracked] = {}
        self._by_key: dict[Any, str] = {}
        self._unsent: dict[Any, JobSpec] = {}
        """Specs whose submit failed: retried with the *same* job id, so a batch that was partly
        executed before the error (Redis applied some scripts, then the connection broke) is not
        placed twice: the store ignores a job id it already holds."""
        self._next_sweep = 0.0
        self.sweep_every = 1.0
        self.default_queue = conf.get("operators", "default_queue", fallback="default")

    # ------------------------------------------------------------------ for subclasses

    def make_dispatcher(self) -> Dispatcher:
        raise TypeError(f"{type(self).__name__} must define make_dispatcher()")

    def report_failure(self, key: Any, event: JobEvent) -> None:
        """A job ended failed with a reason (logged, and passed to Airflow as the failure's info);
        a subclass may tell the task's own log too. Called inside the scheduler loop: must not raise."""

    def handle_orphans(self, orphans: Sequence[Orphan]) -> None:
        """Decide about running jobs whose worker went silent; default: fail them."""
        for o in orphans:
            self._dispatcher.fail(o.job_id, f"worker {o.agent} was lost")

    # ------------------------------------------------------------------ BaseExecutor API

    @property
    def _dispatcher(self) -> Dispatcher:
        if self.dispatcher is None:
            raise RuntimeError(f"{type(self).__name__}.start() was not called")
        return self.dispatcher

    def start(self) -> None:
        self.dispatcher = self.make_dispatcher()
        owner = str(self.job_id) if self.job_id is not None else f"local-{uuid.uuid4().hex[:12]}"
        self.dispatcher.start(owner)
        self.log.info("%s started (owner %s, parallelism %d)", type(self).__name__, owner, self.parallelism)

    def _process_workloads(self, workload_items: Sequence[Any]) -> None:
        specs: list[JobSpec] = []
        for workload in workload_items:
            key = workload.key
            self._unqueue(key)
            spec = self._unsent.pop(key, None) or spec_for(workload, self.default_queue)
            specs.append(spec)
            self._track(key, spec)
        try:
            self._dispatcher.submit(specs)
        except StoreUnavailable as exc:
            self.log.error("could not submit %d job(s), will retry next heartbeat: %s", len(specs), exc)
            for workload, spec in zip(workload_items, specs, strict=True):
                # still tracked: if Redis applied it after all, its events settle it and the retry is
                # dropped (_apply); if not, the retry submits the same job id
                self.running.discard(workload.key)
                self._unsent[workload.key] = spec
                self.queue_workload(workload, session=None)  # type: ignore[arg-type]

    def _unqueue(self, key: Any) -> None:
        """A workload lives in exactly one of Airflow's queues, by kind."""
        for queued in (self.queued_tasks, self.queued_callbacks, self.queued_connection_tests):
            if queued.pop(key, None) is not None:
                return

    def _track(self, key: Any, spec: JobSpec) -> None:
        old = self._by_key.get(key)
        if old is not None:
            self._jobs.pop(old, None)
        self._jobs[spec.job_id] = _Tracked(key, spec.ref)
        self._by_key[key] = spec.job_id
        self.running.add(key)

    def _forget(self, job_id: str) -> _Tracked | None:
        tracked = self._jobs.pop(job_id, None)
        if tracked is not None and self._by_key.get(tracked.key) == job_id:
            del self._by_key[tracked.key]
        return tracked

    def sync(self) -> None:
        try:
            events = list(self._dispatcher.events())
        except StoreUnavailable as exc:
            self.log.warning("cannot read job events (will retry): %s", exc)
            return
        for event in events:
            self._apply(event)
        now = time.monotonic()
        if now >= self._next_sweep:
            self._next_sweep = now + self.sweep_every
            try:
                orphans = self._dispatcher.sweep()
            except StoreUnavailable as exc:
                self.log.warning("liveness sweep failed (will retry): %s", exc)
                return
            if orphans:
                try:
                    self.handle_orphans(orphans)
                except Exception:  # the scheduler loop must survive; the next sweep retries
                    self.log.exception("could not decide about %d orphaned job(s); retrying next sweep",
                                       len(orphans))

    def _apply(self, event: JobEvent) -> None:
        tracked = self._jobs.get(event.job_id)
        if tracked is None:
            return  # superseded, revoked, or another scheduler's job
        if self._unsent.pop(tracked.key, None) is not None:
            # a submit reported as failed had reached Redis after all: no retry, it is running
            self._unqueue(tracked.key)
            self.running.add(tracked.key)
        if event.state is JobState.RUNNING:
            self.running_state(tracked.key, event.external_id or event.job_id)
            return
        if event.state in (JobState.PENDING, JobState.ASSIGNED):
            if event.external_id:  # stored as external_executor_id, used to adopt after a restart
                self.event_buffer[tracked.key] = (state_class_for_key(tracked.key).QUEUED, event.external_id)
            return
        self._forget(event.job_id)
        if event.state is JobState.SUCCESS:
            self.success(tracked.key)
            return
        if event.reason:
            # Not through log_task_event: Airflow 3.3's bulk insert of those rows fails (log.event NULL).
            where = f" on {event.where}" if event.where else ""
            self.log.warning("job %s for %s ended %s%s: %s", event.job_id, tracked.key, event.state, where, event.reason)
            self.report_failure(tracked.key, event)
        self.fail(tracked.key, info=event.reason or None)

    def try_adopt_task_instances(self, tis: Sequence[TaskInstance]) -> Sequence[TaskInstance]:
        by_ref = {task_ref(ti.id, ti.try_number): ti for ti in tis}
        try:
            adopted = self._dispatcher.adopt({ref: ti.external_executor_id for ref, ti in by_ref.items()})
        except StoreUnavailable as exc:
            self.log.warning("cannot adopt tasks now: %s", exc)
            return list(tis)
        not_adopted = []
        for ref, ti in by_ref.items():
            job_id = adopted.get(ref)
            if job_id is None:
                not_adopted.append(ti)
                continue
            self._jobs[job_id] = _Tracked(ti.key, ref)
            self._by_key[ti.key] = job_id
            self.running.add(ti.key)
        self.log.info("adopted %d of %d task(s)", len(tis) - len(not_adopted), len(tis))
        return not_adopted

    def revoke_task(self, *, ti: TaskInstance) -> None:
        ref = task_ref(ti.id, ti.try_number)
        try:
            self._dispatcher.cancel(ref, "revoked by the scheduler (task_queued_timeout)")
        except StoreUnavailable as exc:
            self.log.warning("could not cancel %s: %s", ref, exc)
        job_id = self._by_key.get(ti.key)
        if job_id is not None:
            self._forget(job_id)
        self.running.discard(ti.key)
        self._unsent.pop(ti.key, None)
        self.queued_tasks.pop(ti.key, None)

    def fail_connection_test(self, key: Any) -> None:
        """Airflow's reaper failed a connection test nobody ran in time (in its database): withdraw
        its job too, so it neither waits in a queue forever nor runs later with a dead token."""
        super().fail_connection_test(key)
        job_id = self._by_key.get(key)
        tracked = self._forget(job_id) if job_id is not None else None
        self._unsent.pop(key, None)
        if tracked is None:
            return
        try:
            self._dispatcher.cancel(tracked.ref, "connection test timed out (failed by the scheduler)")
        except StoreUnavailable as exc:
            self.log.warning("could not withdraw connection test %s: %s", tracked.ref, exc)

    def end(self) -> None:
        self.sync()
        self._dispatcher.stop(terminate=False)

    def terminate(self) -> None:
        for tracked in list(self._jobs.values()):
            try:
                self._dispatcher.cancel(tracked.ref, "scheduler terminated")
            except StoreUnavailable as exc:
                self.log.warning("could not cancel %s: %s", tracked.ref, exc)
        self._dispatcher.stop(terminate=True)


class EdgeExecutor(DispatchExecutor):
    """Runs tasks on edge agents: jobs in Redis, pushed by gateways over WebSockets."""

    supports_connection_test = True
    """"Test connection" runs on an agent serving the test's queue, so a connection reachable only
    from an edge site tests green there. The agent reports the result to the Execution API."""
    supports_multi_team = True
    """One executor per team (``[core] executor = "...;team_a=edgeexec.EdgeExecutor"``); its jobs,
    queues, agents and tokens live in the team's own keyspace, so no other team's agent can see or
    claim them, whatever the queue names. Team overrides apply, e.g. ``AIRFLOW__TEAM_A___EDGEEXEC__REDIS_URL``."""

    def make_dispatcher(self) -> Dispatcher:
        from edgeexec.airflow.redis_dispatcher import RedisDispatcher

        self.settings = ExecutorSettings.load(airflow_lookup(SECTION, self.team_name), {"team": self.team_name or ""})
        self.sweep_every = self.settings.sweep_interval
        return RedisDispatcher.from_url(
            self.settings.redis_url, self.settings.keys().prefix,
            liveness_s=self.settings.liveness, job_ttl_s=self.settings.job_ttl,
        )

    def get_task_log(self, ti: TaskInstance, try_number: int) -> tuple[list[str], list[str]]:
        """A running task's log as its agent streamed it, for Airflow's UI and REST API.

        The API server calls this on an executor it builds itself (``start()`` is not called), so
        the Redis connection is made here. Returning a source also stops Airflow from asking a
        worker log server, which agents do not run.
        """
        from edgeexec.airflow import task_logs

        return task_logs.read(ti.id, try_number, self.team_name)

    def handle_orphans(self, orphans: Sequence[Orphan]) -> None:
        """Fail a lost agent's task only once its own Airflow heartbeat is stale too.

        A network cut between agent and gateway must not kill tasks that still run and still
        report to Airflow's Execution API.
        """
        ti_ids = {o.job_id: ti_id_of(o.ref) for o in orphans}
        fresh = self._fresh_task_ids([t for t in ti_ids.values() if t])
        for o in orphans:
            ti_id = ti_ids[o.job_id]
            if ti_id is not None and ti_id in fresh:
                continue
            self.log.warning("failing job %s (%s): agent %s lost and the task stopped heartbeating",
                             o.job_id, o.ref, o.agent)
            self._dispatcher.fail(o.job_id, f"agent {o.agent} was lost and the task stopped heartbeating")

    def _fresh_task_ids(self, ti_ids: list[str]) -> set[str]:
        if not ti_ids:
            return set()
        from airflow.models.taskinstance import TaskInstance
        from airflow.utils.session import create_session
        from airflow.utils.state import TaskInstanceState
        from sqlalchemy import select

        stale_after = self.settings.stale_after
        cutoff = time.time() - stale_after
        with create_session() as session:
            rows = session.execute(
                select(TaskInstance.id, TaskInstance.state, TaskInstance.last_heartbeat_at)
                .where(TaskInstance.id.in_([uuid.UUID(t) for t in ti_ids]))
            ).all()
        return {
            str(row.id) for row in rows
            if row.state == TaskInstanceState.RUNNING and row.last_heartbeat_at is not None
            and row.last_heartbeat_at.timestamp() > cutoff
        }
