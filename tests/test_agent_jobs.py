"""The agent's job bookkeeping (agent/jobs.py), event by event, without sockets or processes (pure).

Each rule is one an operator relies on: a job starts at most once, a result is never lost across
a reconnect, a claim the session could not start goes back to pending, a cancel wins wherever
the job is.
"""

from __future__ import annotations

from agent.jobs import JobBook, Phase, StartKind
from edgeexec import protocol as p


def _run(job: str, slots: int = 1) -> p.Run:
    return p.Run(job=job, workload='{"token": "secret"}', slots=slots)


def _book(*jobs: str, concurrency: int = 4) -> JobBook:
    book = JobBook()
    for job in jobs:
        assert isinstance(book.offer(_run(job), state="idle", concurrency=concurrency), p.Accepted)
    return book


def _statuses(book: JobBook) -> dict[str, p.JobState]:
    return {s.job: s.state for s in book.hello_jobs()}


def test_a_resent_run_is_claimed_again_and_starts_once() -> None:
    book = _book("j1")
    assert isinstance(book.offer(_run("j1"), state="running", concurrency=1), p.Accepted)
    assert book.start("j1").kind is StartKind.FORK
    assert isinstance(book.offer(_run("j1"), state="running", concurrency=1), p.Accepted)  # while forking
    assert book.start("j1").kind is StartKind.UNKNOWN  # a second start forks nothing
    book.forked("j1")
    assert isinstance(book.offer(_run("j1"), state="running", concurrency=1), p.Accepted)
    assert book.running == {"j1": 1} and book.used == 1


def test_offers_beyond_the_slots_or_outside_accepting_states_are_rejected() -> None:
    book = _book("j1", concurrency=2)
    over = book.offer(_run("big", slots=2), state="running", concurrency=2)
    assert isinstance(over, p.Rejected) and "1 slots used" in over.reason
    assert isinstance(book.offer(_run("j2"), state="maintenance pending", concurrency=8), p.Rejected)
    assert set(book.claimed) == {"j1"}


def test_cancel_before_start_withdraws_the_claim_and_a_late_start_reports_failed() -> None:
    book = _book("j1")
    assert book.cancel("j1", "revoked") is Phase.CLAIMED
    assert not book.has_jobs and book.used == 0
    late = book.start("j1")  # Redis recorded the claim before the cancel: it must not hang as running
    assert late.kind is StartKind.REPORT and late.report is not None
    assert late.report.state is p.JobState.FAILED and late.report.exit_code is None
    assert book.unacked == [late.report]


def test_cancel_during_fork_terminates_as_soon_as_the_process_exists() -> None:
    book = _book("j1")
    book.start("j1")
    assert book.cancel("j1", "revoked by the scheduler") is Phase.STARTING
    assert book.forked("j1") is True  # terminate now
    report = book.exited("j1", -15)
    assert report.state is p.JobState.FAILED
    assert report.reason == "revoked by the scheduler; killed by signal 15"


def test_a_process_that_exits_before_forked_is_recorded_stays_finished() -> None:
    book = _book("j1")
    book.start("j1")
    book.exited("j1", 0)
    assert book.forked("j1") is False
    assert _statuses(book) == {"j1": p.JobState.SUCCESS} and not book.running


def test_session_end_while_claimed_lists_the_claim_as_assigned_until_a_welcome() -> None:
    book = _book("j1")
    book.session_ended()
    assert _statuses(book) == {"j1": p.JobState.ASSIGNED}
    assert not book.has_jobs  # its slots are no longer held here
    assert book.start("j1").kind is StartKind.LATE  # a start that raced the end: nothing reported
    assert book.unacked == []
    book.session_ended()  # a hello lost in a failover: the next one lists it again
    assert _statuses(book) == {"j1": p.JobState.ASSIGNED}
    assert book.welcomed() == [] and _statuses(book) == {}


def test_session_end_while_starting_or_running_keeps_the_job_running() -> None:
    book = _book("starting", "running")
    book.start("starting")
    book.start("running")
    book.forked("running")
    book.session_ended()
    assert _statuses(book) == {"starting": p.JobState.RUNNING, "running": p.JobState.RUNNING}
    assert book.welcomed() == [] and set(book.running) == {"starting", "running"}


def test_a_finished_result_is_resent_at_every_welcome_until_acked() -> None:
    book = _book("j1")
    book.start("j1")
    book.forked("j1")
    report = book.exited("j1", 3)
    assert report.reason == "exit code 3"
    book.session_ended()
    assert _statuses(book) == {"j1": p.JobState.FAILED}
    assert book.welcomed() == [report]
    assert book.welcomed() == [report]  # still unacked after another reconnect
    book.acked("j1")
    assert book.welcomed() == [] and _statuses(book) == {}


def test_a_fork_failure_is_a_failed_result() -> None:
    book = _book("j1")
    book.start("j1")
    report = book.fork_failed("j1", "cannot fork: out of memory")
    assert report.state is p.JobState.FAILED and book.unacked == [report] and not book.has_jobs


def test_the_workload_token_is_not_kept_once_the_process_has_it() -> None:
    book = _book("j1", "j2")
    book.start("j1")
    book.forked("j1")
    book.cancel("j2", "revoked")
    book.start("j2")
    assert all(job.workload == "" for job in book.jobs.values())


def test_cancel_of_a_finished_or_unknown_job_does_nothing() -> None:
    book = _book("j1")
    book.start("j1")
    book.forked("j1")
    book.exited("j1", 0)
    assert book.cancel("j1", "late") is None and book.cancel("nope", "x") is None
    assert book.unacked[0].reason == ""
