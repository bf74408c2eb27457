"""Slot accounting and job state in the Lua scripts, on a real redis-server."""

from __future__ import annotations

import threading
import time
from collections import Counter
from typing import Any

import pytest
import redis

from edgeexec.airflow.redis_dispatcher import RedisDispatcher
from edgeexec.dispatch import JobSpec
from edgeexec.states import JOB_TRANSITIONS, NEW, JobState
from edgeexec.store import scripts
from edgeexec.store.keys import Keys

TTL = 3_600_000
LIVENESS = 30_000


def _reachable(name: str, start: JobState | None) -> set[JobState]:
    """States one call of ``name`` may leave a job in: it may take several of its own transitions
    (submit: new -> pending -> assigned)."""
    seen: set[JobState] = set()
    frontier = [start]
    while frontier:
        here = frontier.pop()
        for (old, new), by in JOB_TRANSITIONS.items():
            if old == here and name in by and new not in seen:
                seen.add(new)
                frontier.append(new)
    return seen


class Lua:
    """Calls the scripts the way the gateway and executor do, with a test-controlled clock.

    With ``check`` (the default), every call is also checked against edgeexec/states.py: each job
    submitted through this helper whose state the call changed must have moved along transitions
    the table names this script for (the static check in tests/test_states.py sees where a script
    moves jobs to; this one also sees where from). Off where other clients change the same prefix
    concurrently, and for bulk setup."""

    def __init__(self, client: redis.Redis, keys: Keys, *, check: bool = True) -> None:
        self.c, self.keys, self.now, self.check = client, keys, 1_000_000, check
        self.s = {n: client.register_script(scripts.source(n)) for n in scripts.SCRIPT_NAMES}
        self.jobs: set[str] = set()
        """Jobs submitted through this helper: the ones whose states are checked (a SCAN would
        walk the whole shared server)."""

    def __call__(self, name: str, *args: Any) -> Any:
        """A script with raw ARGV, as a gateway of another version might send it."""
        if name == "submit":
            self.jobs.add(str(args[0]))
        before = self._job_states() if self.check else {}
        result = self.s[name](keys=[], args=[self.keys.prefix, self.now, *args])
        if self.check:
            self._check_transitions(name, before, self._job_states())
        return result

    def _job_states(self) -> dict[str, str | None]:
        jobs = sorted(self.jobs)
        pipe = self.c.pipeline(transaction=False)
        for job in jobs:
            pipe.hget(self.keys.job(job), "state")
        return dict(zip(jobs, pipe.execute(), strict=True))

    @staticmethod
    def _check_transitions(name: str, before: dict[str, str | None], after: dict[str, str | None]) -> None:
        for key, new in after.items():
            old = before.get(key)
            if new is None or old == new:
                continue
            start, end = JobState(old) if old else NEW, JobState(new)
            assert end in _reachable(name, start), (
                f"{name}.lua moved {key} {start} -> {end}, which JOB_TRANSITIONS does not name it for")


    def run(self, call: Any) -> Any:
        """A script through its typed entry, as the gateway and the executor call it (raw reply)."""
        return self(call.NAME, *call.argv())

    def register(self, name: str, conc: int, queues: tuple[str, ...] = ("default",), *, instance: str = "",
                 session: str = "", state: str = "idle", jobs: dict[str, str] | None = None,
                 gw: str = "gw1") -> Any:
        return self.run(scripts.Register(name, session or f"s-{name}", gw, instance or f"i-{name}", queues, conc,
                                         state, "", LIVENESS, jobs or {}, {}, TTL, None))

    def submit(self, job: str, *, queue: str = "default", slots: int = 1, prio: int = 0,
               ref: str = "", owner: str = "sched") -> Any:
        return self.run(scripts.Submit(job, ref or f"ref-{job}", queue, slots, prio, owner, "task", f"payload-{job}"))

    def finish(self, agent: str, job: str, state: str = "success") -> Any:
        return self.run(scripts.Finish(agent, job, state, "", 0, TTL, 100))

    def agent(self, name: str) -> dict[str, str]:
        return self.c.hgetall(self.keys.agent(name))

    def job(self, job: str) -> dict[str, str]:
        return self.c.hgetall(self.keys.job(job))

    def events(self, owner: str = "sched") -> list[dict[str, str]]:
        return [f for _, f in self.c.xrange(self.keys.events(owner))]


@pytest.fixture()
def lua(rclient: redis.Redis, keys: Keys) -> Lua:
    return Lua(rclient, keys)


def _claimed_ids(flat: list[Any]) -> list[str]:
    return [flat[i] for i in range(0, len(flat), 4)]


def test_submit_places_job_on_agent_with_room_and_notifies_its_gateway(lua: Lua) -> None:
    """A job submitted while an agent has free slots is assigned at once and its gateway is told."""
    lua.register("a1", 2)
    ps = lua.c.pubsub()
    ps.subscribe(lua.keys.gateway_channel("gw1"))
    ps.get_message(timeout=1)
    assert lua.submit("j1") == ["queued", "a1"]
    msg = ps.get_message(timeout=2)
    assert msg and msg["data"] == "run\ta1\tj1"
    assert lua.job("j1")["state"] == "assigned"
    assert lua.agent("a1")["used"] == "1"
    assert lua.c.zscore(lua.keys.free("default"), "a1") == 1
    ps.close()


def test_pending_jobs_are_claimed_by_priority_then_fifo(lua: Lua) -> None:
    """Higher priority_weight first; equal priority in submission order."""
    for job, prio in [("low1", 1), ("high", 10), ("low2", 1), ("mid", 5)]:
        lua.submit(job, prio=prio)
    lua.register("a1", 1)
    order = []
    current = lua.agent("a1") and [j for j in lua.c.smembers(lua.keys.agent_jobs("a1"))]
    order += current
    for _ in range(3):
        status, claimed = lua.finish("a1", order[-1])
        assert status == "ok"
        order += _claimed_ids(claimed)
    assert order == ["high", "mid", "low1", "low2"]


def test_pool_slots_never_oversubscribe_an_agent(lua: Lua) -> None:
    """Two-slot jobs on a three-slot agent run one at a time; a one-slot job may fill the gap."""
    for j in ("big1", "big2"):
        lua.submit(j, slots=2)
    lua.submit("small", slots=1, prio=-1)
    reg = lua.register("a1", 3)
    assert _claimed_ids(reg[2]) == ["big1", "small"]
    assert lua.agent("a1")["used"] == "3"
    _, claimed = lua.finish("a1", "small")
    assert _claimed_ids(claimed) == []  # big2 needs 2, only 1 free
    _status, claimed = lua.finish("a1", "big1")
    assert _claimed_ids(claimed) == ["big2"]
    assert int(lua.agent("a1")["used"]) <= 3


def test_job_bigger_than_any_agent_stays_pending_and_others_pass_it(lua: Lua) -> None:
    """A job needing more slots than the agent has does not block smaller jobs behind it."""
    lua.submit("huge", slots=5, prio=100)
    lua.submit("small")
    reg = lua.register("a1", 2)
    assert _claimed_ids(reg[2]) == ["small"]
    assert lua.job("huge")["state"] == "pending"


def test_finish_releases_slots_once_and_emits_one_event(lua: Lua) -> None:
    """A duplicate terminal report (agent resend after reconnect) changes nothing."""
    lua.register("a1", 1)
    lua.submit("j1")
    assert lua("accept", "a1", "j1") == "ok"
    assert lua.finish("a1", "j1")[0] == "ok"
    assert lua.finish("a1", "j1")[0] == "duplicate"
    assert lua.agent("a1")["used"] == "0"
    assert [e["state"] for e in lua.events()] == ["running", "success"]
    assert "payload" not in lua.job("j1"), "the workload token must not outlive the job"


def test_agent_cannot_finish_another_agents_job(lua: Lua) -> None:
    """An agent can only report on jobs assigned to it."""
    lua.register("a1", 1)
    lua.register("a2", 1)
    lua.submit("j1")
    owner = lua.job("j1")["agent"]
    other = "a2" if owner == "a1" else "a1"
    assert lua.finish(other, "j1")[0] == "foreign"
    assert lua.job("j1")["state"] == "assigned"


def test_same_name_live_agent_is_refused_but_a_restart_takes_over(lua: Lua) -> None:
    """Two live processes may not share a name; a restarted (dead old session) one is accepted at once."""
    assert lua.register("a1", 1, instance="one")[0] == "ok"
    assert lua.register("a1", 1, instance="two")[0] == "conflict"
    assert lua.register("a1", 1, instance="one", session="s2")[0] == "ok"  # same process reconnecting
    lua("disconnect", "a1", "s2", "0", LIVENESS, 1000)
    assert lua.register("a1", 1, instance="three")[0] == "ok"  # old session gone: no lock-out


def test_reconnect_reconciles_jobs(lua: Lua) -> None:
    """On hello: unstarted jobs not reported are requeued, lost running ones fail, reported ones stay."""
    lua.register("a1", 3)
    for j in ("keep", "lost", "unstarted"):
        lua.submit(j)
    lua("accept", "a1", "keep")
    lua("accept", "a1", "lost")
    lua("disconnect", "a1", "s-a1", "0", LIVENESS, 1000)
    res = lua.register("a1", 3, session="s2", jobs={"keep": "running"})
    assert lua.job("keep")["state"] == "running"
    assert lua.job("lost")["state"] == "failed"
    assert "restarted" in lua.job("lost")["reason"]
    assert _claimed_ids(res[2]) == ["unstarted"]  # requeued, then claimed again by the free agent
    assert lua.agent("a1")["used"] == "2"


def test_reaper_requeues_unstarted_and_reports_running_orphans(lua: Lua) -> None:
    """A silent agent's unstarted jobs move to a live agent; its running jobs go to the executor."""
    lua.register("dead", 2)
    lua.submit("r1")
    lua.submit("u1")
    lua("accept", "dead", "r1")
    lua.now += LIVENESS + 1
    lua.register("live", 2)
    lua.c.hset(lua.keys.agent("live"), "used", 0)
    lost, orphans = lua("reap", LIVENESS)
    assert lost == ["dead"]
    assert orphans[:2] == ["dead", "r1"]
    assert lua.job("u1")["agent"] == "live"
    assert lua.agent("dead")["state"] == "unknown"


def test_cancel_pending_and_running(lua: Lua) -> None:
    """Cancelling a pending job finishes it; cancelling a running one tells its gateway."""
    lua.submit("p1")
    assert lua("cancel", "ref-p1", "revoked", TTL) == "cancelled"
    assert lua.job("p1")["state"] == "cancelled"
    lua.register("a1", 1)
    lua.submit("r1")
    assert lua("accept", "a1", "r1", TTL) == "ok"
    ps = lua.c.pubsub()
    ps.subscribe(lua.keys.gateway_channel("gw1"))
    ps.get_message(timeout=1)
    assert lua("cancel", "ref-r1", "revoked", TTL) == "signalled"
    assert ps.get_message(timeout=2)["data"] == "cancel\ta1\tr1\trevoked"
    ps.close()


def test_a_job_revoked_while_assigned_is_cancelled_at_once_with_its_workload(lua: Lua) -> None:
    """Revoked before the agent claimed it: cancelled in Redis (slots back, workload and its token
    dropped, one event), the agent told to withdraw, and a late claim refused."""
    lua.register("a1", 1)
    lua.submit("r1")
    assert lua("cancel", "ref-r1", "revoked by scheduler", TTL) == "cancelled"
    job = lua.job("r1")
    assert (job["state"], job["reason"]) == ("cancelled", "revoked by scheduler") and "payload" not in job
    assert lua.agent("a1")["used"] == "0"
    assert lua("accept", "a1", "r1", TTL) == "finished"
    lua.register("a1", 1, instance="i-a1", session="s2", jobs={"r1": "assigned"})
    assert lua.job("r1")["state"] == "cancelled"  # never back to pending
    assert [e["state"] for e in lua.events()] == ["cancelled"]


def test_cancel_of_a_running_job_is_redelivered_until_it_finishes(lua: Lua) -> None:
    """The cancel is recorded on the job: every heartbeat and a re-registration hand it out again,
    so a lost pub/sub notice only delays it; once the job finished, it is not sent any more."""
    lua.register("a1", 1)
    lua.submit("r1")
    assert lua("accept", "a1", "r1", TTL) == "ok"
    assert lua("cancel", "ref-r1", "stop it", TTL) == "signalled"
    assert lua("heartbeat", "a1", "s-a1", "running", "\0", "")[3] == ["r1", "stop it"]
    reg = lua.register("a1", 1, instance="i-a1", session="s2", jobs={"r1": "running"})
    assert reg[6] == ["r1"] and reg[7] == ["r1", "stop it"]
    lua.finish("a1", "r1", "failed")
    assert lua("heartbeat", "a1", "s2", "idle", "\0", "")[3] == []


def test_a_job_failed_meanwhile_is_cancelled_on_the_agent_that_still_runs_it(lua: Lua) -> None:
    """The executor failed a lost agent's job; the agent comes back still running it: the job is
    listed as foreign (the gateway cancels it), not silently left running and uncounted."""
    lua.register("a1", 2)
    lua.submit("r1")
    assert lua("accept", "a1", "r1", TTL) == "ok"
    lua("finish", "", "r1", "failed", "worker lost", "", TTL, 0)
    reg = lua.register("a1", 2, instance="i-a1", session="s2", jobs={"r1": "running"})
    assert reg[1] == ["r1"] and reg[6] == [] and lua.agent("a1")["used"] == "0"


def test_liveness_uses_redis_clock_and_each_agents_own_window(lua: Lua) -> None:
    """With '' for now, scripts read Redis' TIME (hosts' clocks never meet); the reaper uses the
    window recorded at registration, not the calling scheduler's setting."""
    t = lua.c.time()
    redis_now = int(t[0]) * 1000 + int(t[1]) // 1000
    lua.now = redis_now - 60_000  # registered a minute ago (by Redis' clock)
    lua("register", "slow", "s1", "gw1", "i1", '["default"]', 1, "idle", "", 120_000, "{}", "{}", TTL)
    lua("register", "fast", "s2", "gw1", "i2", '["default"]', 1, "idle", "", 30_000, "{}", "{}", TTL)
    lua.now = ""  # production: Redis' own clock
    lost, _ = lua("reap", 10_000, "", 0)
    assert lost == ["fast"]
    assert lua.c.zscore(lua.keys.heartbeats, "slow") == redis_now - 60_000 + 120_000


def test_maintenance_off_recorded_while_away_wins_at_reconnect(lua: Lua) -> None:
    """An operator's `maintenance off` for a disconnected agent applies when it comes back, even
    though the agent still reports maintenance: the agent takes work and is told so."""
    lua.register("a1", 1, state="maintenance mode")
    lua("disconnect", "a1", "s-a1", "0", LIVENESS, 1000)
    lua.c.hset(lua.keys.agent("a1"), mapping={"maintenance": "0", "mop": "off"})
    reg = lua.register("a1", 1, session="s2", state="maintenance mode")
    assert reg[3] == "0" and reg[8] == "1"
    assert lua.agent("a1")["accepting"] == "1" and "mop" not in lua.agent("a1")


@pytest.mark.slow  # seconds of load by design; `make fast` leaves it out
def test_events_are_never_trimmed_before_the_scheduler_reads_them(lua: Lua) -> None:
    """A scheduler stalled while more than 100 000 jobs finished still reads every event (a trimmed
    stream would leak its executor slots until a restart)."""
    n = 100_500
    pipe = lua.c.pipeline(transaction=False)
    for i in range(n):
        lua.s["submit"](keys=[], args=[lua.keys.prefix, lua.now, f"j{i}", f"r{i}", "q", 1, 0, "sched", "task", "w"],
                        client=pipe)
        lua.s["cancel"](keys=[], args=[lua.keys.prefix, lua.now, f"r{i}", "stop", TTL], client=pipe)
    pipe.execute()
    try:
        assert lua.c.xlen(lua.keys.events("sched")) == n
    finally:  # 200 000 keys would slow every later SCAN of the shared server
        for start in range(0, n, 10_000):
            batch = range(start, min(start + 10_000, n))
            lua.c.unlink(*[lua.keys.job(f"j{i}") for i in batch], *[lua.keys.ref(f"r{i}") for i in batch])
        lua.c.unlink(lua.keys.events("sched"))


def test_the_streams_of_gone_schedulers_are_deleted(lua: Lua) -> None:
    """A scheduler that stopped sweeping for owner_ttl loses its stream (its jobs are adopted by
    ref); a live one keeps it."""
    lua.submit("j1", owner="gone")
    lua("cancel", "ref-j1", "x", TTL)
    lua("reap", LIVENESS, "gone", 1)
    lua("reap", LIVENESS, "alive", TTL)
    deadline = time.monotonic() + 10
    while lua.c.exists(lua.keys.events("gone")) and time.monotonic() < deadline:
        lua("reap", LIVENESS, "alive", TTL)
    assert not lua.c.exists(lua.keys.events("gone"))
    assert lua.c.smembers(lua.keys.owners) == {"alive"}


def test_claim_reported_unstarted_after_reconnect_is_requeued_not_failed(lua: Lua) -> None:
    """Hello lists a claimed job as 'assigned' (its start was lost): back to pending and offered
    again, even though Redis had already recorded it running."""
    lua.register("a1", 1)
    lua.submit("j1")
    assert lua("accept", "a1", "j1", TTL) == "ok"
    reg = lua.register("a1", 1, instance="i-a1", session="s2", jobs={"j1": "assigned"})
    assert _claimed_ids(reg[2]) == ["j1"]
    assert lua.job("j1")["state"] == "assigned" and lua.agent("a1")["used"] == "1"
    assert [e["state"] for e in lua.events()] == ["running"]


def test_resubmitting_a_ref_supersedes_the_pending_job(lua: Lua) -> None:
    """A rescheduled task queued again with the same try gets a new job; the old pending one goes."""
    lua.submit("old", ref="ti:1:1")
    lua.submit("new", ref="ti:1:1")
    assert lua.job("old")["state"] == "cancelled"
    assert lua.c.get(lua.keys.ref("ti:1:1")) == "new"


def test_adopt_moves_ownership_and_replays_final_state(rclient: redis.Redis, keys: Keys, lua: Lua) -> None:
    """After a scheduler restart the new owner gets the result of a job that finished meanwhile."""
    lua.register("a1", 1)
    lua.submit("j1", ref="ti:x:1", owner="old")
    lua("accept", "a1", "j1")
    lua.finish("a1", "j1")
    d = RedisDispatcher(rclient, keys, liveness_s=30, job_ttl_s=60)
    d.start("new")
    assert d.adopt({"ti:x:1": None, "ti:missing:1": None}) == {"ti:x:1": "j1"}
    assert [(e.job_id, e.state.value) for e in d.events()] == [("j1", "success")]
    assert list(d.events()) == [], "events are consumed once"


def test_dispatcher_submit_is_visible_to_claims(rclient: redis.Redis, keys: Keys, lua: Lua) -> None:
    """The executor's pipelined submit and a gateway's claim agree on the same records."""
    d = RedisDispatcher(rclient, keys, liveness_s=30, job_ttl_s=60)
    d.start("sched")
    d.submit([JobSpec(f"j{i}", f"ti:{i}:1", "task", "q", 1, i, "{}") for i in range(5)])
    res = lua.register("a1", 5, queues=("q",))
    assert _claimed_ids(res[2]) == ["j4", "j3", "j2", "j1", "j0"]


def test_fifty_concurrent_claimers_never_double_assign_or_oversubscribe(
        redis_server: Any, keys: Keys) -> None:
    """60 agents claiming and finishing at once: every job runs exactly once, no agent over its slots."""
    n_agents, n_jobs = 60, 600
    setup = Lua(redis.Redis.from_url(redis_server.url, decode_responses=True), keys, check=False)  # bulk setup
    for i in range(n_jobs):
        setup.submit(f"j{i}", slots=1 + i % 3, queue="default")
    conc = {f"a{i}": 1 + i % 4 for i in range(n_agents)}
    runs: Counter[str] = Counter()
    lock = threading.Lock()
    errors: list[str] = []

    def worker(name: str) -> None:
        lua = Lua(redis.Redis.from_url(redis_server.url, decode_responses=True), keys, check=False)
        res = lua.register(name, conc[name])
        held = _claimed_ids(res[2])
        while held:
            used = int(lua.agent(name)["used"])
            if used > conc[name]:
                errors.append(f"{name} used {used} > {conc[name]}")
            with lock:
                runs.update(held)
            nxt: list[str] = []
            for job in held:
                lua("accept", name, job)
                nxt += _claimed_ids(lua.finish(name, job)[1])
            held = nxt
        lua("disconnect", name, f"s-{name}", "1", LIVENESS, 1000)

    threads = [threading.Thread(target=worker, args=(n,)) for n in conc]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors
    # jobs of 3 slots only fit agents with concurrency >= 3; all fit some agent here
    assert set(runs) == {f"j{i}" for i in range(n_jobs)}, f"missing {n_jobs - len(runs)} job(s)"
    assert max(runs.values()) == 1, "a job was assigned twice"
    for name in conc:
        assert setup.agent(name)["used"] == "0"
    assert setup.c.zcard(keys.free("default")) == 0


def test_records_written_by_an_older_gateway_keep_their_old_meaning_during_an_upgrade(lua: Lua) -> None:
    """A gateway from before per-agent windows scores hb with the last heartbeat ('seen'), even for
    an agent whose record still has a window from an upgraded gateway: such an agent is lost only
    after the scheduler's own liveness, as before."""
    lua.register("old", 1)
    lua.c.hset(lua.keys.agent("old"), "seen", lua.now - 10_000)
    lua.c.zadd(lua.keys.heartbeats, {"old": lua.now - 10_000})
    assert lua("reap", LIVENESS, "", 0)[0] == []
    lua.c.hset(lua.keys.agent("old"), "seen", lua.now - LIVENESS - 1)
    lua.c.zadd(lua.keys.heartbeats, {"old": lua.now - LIVENESS - 1})
    assert lua("reap", LIVENESS, "", 0)[0] == ["old"]


def test_a_revoked_job_whose_start_was_lost_is_cancelled_not_requeued(lua: Lua) -> None:
    """Running with a cancel mark, listed as assigned at reconnect (its start was lost): it is
    finished as cancelled, not offered again."""
    lua.register("a1", 1)
    lua.submit("r1")
    assert lua("accept", "a1", "r1", TTL) == "ok"
    assert lua("cancel", "ref-r1", "revoked", TTL) == "signalled"
    reg = lua.register("a1", 1, instance="i-a1", session="s2", jobs={"r1": "assigned"})
    assert _claimed_ids(reg[2]) == [] and lua.job("r1")["state"] == "cancelled"
    assert lua.agent("a1")["used"] == "0"


def test_adopt_takes_any_number_of_refs(lua: Lua) -> None:
    """A scheduler that died with tens of thousands of queued tasks: every ref is looked at (a
    script cannot unpack more than 8 000 values), and the dispatcher sends them in batches."""
    lua.submit("j1", ref="r1")
    refs = [f"gone-{i}" for i in range(9_000)] + ["r1"]
    assert lua.run(scripts.Adopt("heir", tuple((r, "") for r in refs))) == ["r1", "j1", "pending"]
    d = RedisDispatcher(lua.c, lua.keys, liveness_s=30, job_ttl_s=60)
    d.start("heir2")
    assert d.adopt(dict.fromkeys([*refs, *[f"more-{i}" for i in range(3_000)]])) == {"r1": "j1"}
    assert lua.c.hget(lua.keys.job("j1"), "owner") == "heir2"


def test_forget_removes_only_an_offline_agent_without_jobs(lua: Lua) -> None:
    """An operator's remove: refused while the agent is connected or holds a job; then every trace
    of it (record, fleet set, liveness, free slots) is gone and status watchers are told."""
    lua.register("gone", 2, ("qa", "qb"))
    lua.submit("j1", queue="qa")
    assert lua.run(scripts.Forget("gone")) == "connected"
    lua.run(scripts.Disconnect("gone", "s-gone", True, LIVENESS, 0))
    assert lua.run(scripts.Forget("gone")) == "busy", "its job is still assigned to it"
    lua.now += LIVENESS + 1
    lua("reap", LIVENESS)  # declared lost: its unstarted job goes back to pending
    ps = lua.c.pubsub()
    ps.subscribe(lua.keys.status_channel)
    ps.get_message(timeout=1)
    assert lua.run(scripts.Forget("gone")) == "forgotten"
    assert not lua.agent("gone") and "gone" not in lua.c.smembers(lua.keys.agents)
    assert lua.c.zscore(lua.keys.heartbeats, "gone") is None
    assert all(lua.c.zscore(lua.keys.free(q), "gone") is None for q in ("qa", "qb"))
    assert lua.job("j1")["state"] == "pending"
    msg = ps.get_message(timeout=2)
    assert msg and msg["data"] == "gone"
    ps.close()
    assert lua.run(scripts.Forget("gone")) == "unknown"


def test_adopt_takes_only_the_job_airflow_knows_for_the_try(lua: Lua) -> None:
    """A try queued again (after a deferral) under a new pre-assigned id, whose scheduler died
    before submitting it: the ref's earlier, finished job is not adopted in its place (that would
    report the new try finished); a scheduler that knows no id still gets the ref's newest job."""
    lua.register("a1", 1)
    lua.submit("first", ref="ti:t1:1")
    lua("accept", "a1", "first", TTL)
    lua.finish("a1", "first")
    assert lua.run(scripts.Adopt("heir", (("ti:t1:1", "never-submitted"),))) == []
    assert lua.run(scripts.Adopt("heir", (("ti:t1:1", "first"),)))[:2] == ["ti:t1:1", "first"]
    assert lua.run(scripts.Adopt("heir", (("ti:t1:1", ""),)))[:2] == ["ti:t1:1", "first"]
    d = RedisDispatcher(lua.c, lua.keys, liveness_s=30, job_ttl_s=60)
    d.start("heir2")
    pre = "0b5e6f1c-8d7a-4c3e-9f21-5a6b7c8d9e0f"
    assert d.adopt({"ti:t1:1": pre}) == {}, "the pre-assigned try was never submitted"
