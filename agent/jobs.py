"""The agent's job bookkeeping, as one pure object: no sockets, no processes, no clock.

Every job the agent knows is one record with a phase::

    offer (run) -> CLAIMED --start--> STARTING --forked--> RUNNING --exited--> FINISHED --ack--> (gone)
                     |  \\--session ends--> UNSTARTED --welcome--> (gone: Redis returned it to pending)
                     \\--cancel--> WITHDRAWN --start--> FINISHED (failed: it must not hang as running)
                                            \\--welcome--> (gone)

A ``run`` is only an offer: the agent claims it (``accepted``, holding its slots) and forks the
process when ``start`` says Redis recorded the claim, so a job re-placed elsewhere meanwhile never
starts twice. Claims belong to a session: those unstarted when it ends are listed as ``assigned``
in the next hello (Redis returns them to pending) until a welcome confirms that hello was
registered. A terminal state stays FINISHED until the gateway acks it and is resent on every
welcome, so a reconnect loses no result.

Each method is one event; it returns the frame to send (or what the agent must do), and the
agent (agent/core.py) does the I/O: sending, forking, signalling, journaling.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from edgeexec import protocol as p


class Phase(StrEnum):
    CLAIMED = "claimed"
    """Accepted; slots held until ``start`` (or the session's end)."""
    STARTING = "starting"
    """``start`` came: the process is being forked. Counts as running."""
    RUNNING = "running"
    FINISHED = "finished"
    """Terminal; the report is resent until the gateway acks it."""
    UNSTARTED = "unstarted"
    """A claim of a session that ended before its ``start``: hello lists it as assigned."""
    WITHDRAWN = "withdrawn"
    """A claim cancelled before ``start`` came: a late start is reported failed."""


ACTIVE = frozenset({Phase.STARTING, Phase.RUNNING})


@dataclass(slots=True)
class Job:
    id: str
    phase: Phase
    slots: int = 0
    workload: str = field(default="", repr=False)
    cancel_reason: str = ""
    """Set when a cancel arrives while the process is starting or running."""
    report: p.StateReport | None = None


class StartKind(StrEnum):
    FORK = "fork"
    """Fork the job's process now (``job.workload``, ``job.slots``)."""
    REPORT = "report"
    """Do not fork; send ``report`` (a withdrawn claim)."""
    LATE = "late"
    """Its session ended as the start arrived: it returns to pending, nothing is reported."""
    UNKNOWN = "unknown"
    """Not a claim of this agent (or already started): ignore."""


@dataclass(frozen=True, slots=True)
class StartOutcome:
    kind: StartKind
    job: Job | None = None
    report: p.StateReport | None = None


class JobBook:
    def __init__(self) -> None:
        self.jobs: dict[str, Job] = {}

    # ------------------------------------------------------------------ views

    def _in(self, *phases: Phase) -> list[Job]:
        return [j for j in self.jobs.values() if j.phase in phases]

    @property
    def running(self) -> dict[str, int]:
        """Jobs told to start, by slots: those being forked count as running already."""
        return {j.id: j.slots for j in self._in(*ACTIVE)}

    @property
    def claimed(self) -> dict[str, int]:
        return {j.id: j.slots for j in self._in(Phase.CLAIMED)}

    @property
    def used(self) -> int:
        return sum(j.slots for j in self._in(Phase.CLAIMED, *ACTIVE))

    @property
    def has_jobs(self) -> bool:
        """Running or claimed: what makes an agent 'running' rather than 'idle'."""
        return bool(self._in(Phase.CLAIMED, *ACTIVE))

    @property
    def unacked(self) -> list[p.StateReport]:
        return [j.report for j in self._in(Phase.FINISHED) if j.report is not None]

    def hello_jobs(self) -> tuple[p.JobStatus, ...]:
        """What the next hello reports: running, finished-unacked and unstarted (as assigned) jobs."""
        jobs = [p.JobStatus(j.id, p.JobState.RUNNING) for j in self._in(*ACTIVE)]
        jobs += [p.JobStatus(r.job, r.state) for r in self.unacked]
        jobs += [p.JobStatus(j.id, p.JobState.ASSIGNED) for j in self._in(Phase.UNSTARTED)]
        return tuple(jobs)

    # ------------------------------------------------------------------ events

    def offer(self, run: p.Run, *, state: str, concurrency: int) -> p.Accepted | p.Rejected:
        """A ``run``: claim it if the agent accepts work and has the slots. A resent run of a job
        claimed or started here is claimed again (the gateway may have missed the first claim)
        and still starts once."""
        known = self.jobs.get(run.job)
        if known is not None and known.phase in (Phase.CLAIMED, *ACTIVE):
            return p.Accepted(job=run.job)
        if known is not None and known.phase is Phase.FINISHED:  # its unacked result must not be lost
            return p.Rejected(job=run.job, reason="this job already finished here; its result awaits an ack")
        if state not in p.ACCEPTING_STATES or self.used + run.slots > concurrency:
            return p.Rejected(job=run.job, reason=f"agent is {state}, {self.used} slots used")
        self.jobs[run.job] = Job(run.job, Phase.CLAIMED, run.slots, run.workload)
        return p.Accepted(job=run.job)

    def start(self, job_id: str) -> StartOutcome:
        job = self.jobs.get(job_id)
        if job is None:
            return StartOutcome(StartKind.UNKNOWN)
        if job.phase is Phase.CLAIMED:
            job.phase = Phase.STARTING
            return StartOutcome(StartKind.FORK, job)
        if job.phase is Phase.WITHDRAWN:
            report = self._finish(job, p.StateReport(job_id, p.JobState.FAILED, None,
                                                     "cancelled on the agent before its process started"))
            return StartOutcome(StartKind.REPORT, job, report)
        if job.phase is Phase.UNSTARTED:
            return StartOutcome(StartKind.LATE, job)
        return StartOutcome(StartKind.UNKNOWN, job)

    def forked(self, job_id: str) -> bool:
        """The process exists. True: a cancel came while it was being forked, terminate it now.
        (A process that already exited before this was called stays FINISHED.)"""
        job = self.jobs[job_id]
        if job.phase is not Phase.STARTING:
            return False
        job.phase = Phase.RUNNING
        job.workload = ""  # the process has it; the token is not kept around
        return bool(job.cancel_reason)

    def fork_failed(self, job_id: str, error: str) -> p.StateReport:
        return self._finish(self.jobs[job_id], p.StateReport(job_id, p.JobState.FAILED, None, error))

    def exited(self, job_id: str, code: int) -> p.StateReport:
        """The process ended with ``code`` (negative: killed by that signal)."""
        job = self.jobs.get(job_id) or Job(job_id, Phase.RUNNING)
        reason = job.cancel_reason
        if code == 0:
            state = p.JobState.SUCCESS
        else:
            state = p.JobState.FAILED
            cause = f"killed by signal {-code}" if code < 0 else f"exit code {code}"
            reason = f"{reason}; {cause}" if reason else cause
        return self._finish(job, p.StateReport(job=job_id, state=state, exit_code=code, reason=reason))

    def acked(self, job_id: str) -> None:
        job = self.jobs.get(job_id)
        if job is not None and job.phase is Phase.FINISHED:
            del self.jobs[job_id]

    def cancel(self, job_id: str, reason: str) -> Phase | None:
        """A cancel (from the scheduler, a drain timeout or shutdown). Returns the phase it found:
        CLAIMED (now withdrawn: nothing runs), STARTING or RUNNING (the agent terminates the
        process; one being forked is terminated as soon as it exists), or None (nothing to do)."""
        job = self.jobs.get(job_id)
        if job is None:
            return None
        if job.phase is Phase.CLAIMED:
            job.phase = Phase.WITHDRAWN
            return Phase.CLAIMED
        if job.phase in ACTIVE:
            found = job.phase
            job.cancel_reason = reason or "cancelled"  # the latest says why it ends (e.g. shutdown after a drain timeout)
            return found
        return None

    def session_ended(self) -> None:
        """Unstarted claims go back to pending through the next hello."""
        for job in self._in(Phase.CLAIMED):
            job.phase = Phase.UNSTARTED

    def welcomed(self) -> list[p.StateReport]:
        """A welcome: the hello was registered, so Redis has returned the unstarted claims to
        pending and no start for a claim of an earlier session can come. Returns the results
        to resend."""
        for job in self._in(Phase.UNSTARTED, Phase.WITHDRAWN):
            del self.jobs[job.id]
        return self.unacked

    def _finish(self, job: Job, report: p.StateReport) -> p.StateReport:
        job.phase, job.report, job.workload = Phase.FINISHED, report, ""
        self.jobs[job.id] = job
        return report
