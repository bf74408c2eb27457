"""EdgeExecutor inside this process against the session's real Redis (no scheduler needed).

Agents are played by the store's own scripts (what a gateway would call), so the executor's
behaviour is checked through the same records a real deployment uses.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import redis

from edgeexec.store.keys import Keys
from tests.test_store_lua import Lua


@pytest.fixture()
def executor(redis_server: Any, keys: Keys, tmp_path: Path) -> Iterator[Any]:
    env = {
        "AIRFLOW_HOME": str(tmp_path),
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{tmp_path}/airflow.db",
        "AIRFLOW__EDGEEXEC__REDIS_URL": redis_server.url,
        "AIRFLOW__EDGEEXEC__REDIS_PREFIX": keys.prefix,
        "AIRFLOW__API_AUTH__JWT_SECRET": "not-used-here",
    }
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        from edgeexec import EdgeExecutor

        ex = EdgeExecutor(parallelism=2)
        ex.job_id = 42
        ex.start()
        yield ex
        ex.end()
    finally:  # whatever failed: the next test (and every CLI it starts) must not inherit these
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _workload(queue: str = "default", priority: int = 1, try_number: int = 1, ti_id: uuid.UUID | None = None) -> Any:
    from airflow.executors.workloads import BundleInfo, ExecuteTask, TaskInstanceDTO

    ti = TaskInstanceDTO(id=ti_id or uuid.uuid4(), task_id=f"t{uuid.uuid4().hex}", dag_id="d", run_id="r",
                         try_number=try_number, dag_version_id=uuid.uuid4(), queue=queue, pool_slots=1,
                         priority_weight=priority)
    return ExecuteTask(ti=ti, dag_rel_path=Path("d.py"), token="jwt-token", log_path=None,
                       bundle_info=BundleInfo(name="dags-folder"))


def _queue(ex: Any, *workloads: Any) -> None:
    for w in workloads:
        ex.queue_workload(w, session=None)


def test_parallelism_limits_what_is_handed_to_redis(executor: Any, rclient: redis.Redis, keys: Keys) -> None:
    """[core] parallelism: with 2 slots, only the 2 highest-priority of 5 tasks are submitted."""
    work = [_workload(priority=p) for p in range(5)]
    _queue(executor, *work)
    executor.heartbeat()
    assert len(executor.running) == 2 and len(executor.queued_tasks) == 3
    members = rclient.zrange(keys.pending("default", 1), 0, -1)
    assert {rclient.hget(keys.job(m.split("|")[1]), "prio") for m in members} == {"4", "3"}


def test_agent_events_become_airflow_states(executor: Any, rclient: redis.Redis, keys: Keys) -> None:
    """running -> running_state (key stays running); success/failed -> event buffer, slot freed."""
    lua = Lua(rclient, keys)
    ok, bad = _workload(), _workload()
    _queue(executor, ok, bad)
    executor.heartbeat()
    reg = lua.register("a1", 2)
    jobs = [reg[2][i] for i in range(0, len(reg[2]), 4)]
    assert len(jobs) == 2
    for job in jobs:
        lua("accept", "a1", job)
    executor.sync()
    assert {k for k, (state, _) in executor.get_event_buffer().items()} == {ok.ti.key, bad.ti.key}
    by_ref = {rclient.hget(keys.job(j), "ref"): j for j in jobs}
    lua("finish", "a1", by_ref[f"ti:{ok.ti.id}:1"], "success", "", 0, 60000, 0)
    lua("finish", "a1", by_ref[f"ti:{bad.ti.id}:1"], "failed", "exit code 1", 1, 60000, 0)
    executor.sync()
    states = {k: state for k, (state, _) in executor.get_event_buffer().items()}
    assert states == {ok.ti.key: "success", bad.ti.key: "failed"}
    assert executor.running == set()


def test_revoke_cancels_the_pending_job_and_emits_nothing(executor: Any, rclient: redis.Redis, keys: Keys) -> None:
    """revoke_task (task_queued_timeout) removes the job from Redis and adds no Airflow event."""
    w = _workload(queue="nobody-serves-this")
    _queue(executor, w)
    executor.heartbeat()
    ti = SimpleNamespace(id=w.ti.id, try_number=1, key=w.ti.key)
    executor.revoke_task(ti=ti)
    job = rclient.get(keys.ref(f"ti:{w.ti.id}:1"))
    assert rclient.hget(keys.job(job), "state") == "cancelled"
    assert rclient.zcard(keys.pending("nobody-serves-this", 1)) == 0
    executor.sync()
    assert executor.get_event_buffer() == {} and executor.running == set()


def test_a_connection_test_the_reaper_failed_is_withdrawn(executor: Any, rclient: redis.Redis, keys: Keys) -> None:
    """A 'Test connection' for a queue no agent serves waits as a job; when Airflow's reaper fails it
    (fail_connection_test), the job is cancelled and the executor holds nothing for it."""
    from airflow.executors.workloads import TestConnection

    test_id = uuid.uuid4()
    w = TestConnection(connection_test_id=test_id, connection_id="site_db", timeout=5, queue="nobody-serves-this",
                       token="jwt-token")
    _queue(executor, w)
    executor.heartbeat()
    job = rclient.get(keys.ref(f"ct:{test_id}"))
    assert rclient.hget(keys.job(job), "kind") == "connection_test" and w.key in executor.running
    executor.fail_connection_test(w.key)
    assert rclient.hget(keys.job(job), "state") == "cancelled"
    assert rclient.zcard(keys.pending("nobody-serves-this", 1)) == 0
    executor.sync()
    assert executor.running == set() and not executor._jobs and not executor._by_key


def test_adoption_after_scheduler_restart(executor: Any, rclient: redis.Redis, keys: Keys) -> None:
    """A new scheduler adopts jobs it finds in Redis and receives their results; unknown ones are returned."""
    lua = Lua(rclient, keys)
    lua.register("a1", 1)
    ti_id = uuid.uuid4()
    lua.submit("old-job", ref=f"ti:{ti_id}:1", owner="dead-scheduler")
    lua("accept", "a1", "old-job")
    from airflow.models.taskinstancekey import TaskInstanceKey

    known = SimpleNamespace(id=ti_id, try_number=1, key=TaskInstanceKey("d", "known", "r", 1, -1),
                            external_executor_id="old-job")
    unknown = SimpleNamespace(id=uuid.uuid4(), try_number=1, key=TaskInstanceKey("d", "unknown", "r", 1, -1),
                              external_executor_id=None)
    assert executor.try_adopt_task_instances([known, unknown]) == [unknown]
    assert known.key in executor.running
    lua.finish("a1", "old-job")
    executor.sync()
    assert {k: s for k, (s, _) in executor.get_event_buffer().items()}.get(known.key) == "success"


def test_redis_outage_keeps_workloads_queued(executor: Any, tmp_path: Path) -> None:
    """With Redis unreachable, workloads stay queued for the next heartbeat; the scheduler does not crash."""
    from edgeexec.airflow.redis_dispatcher import RedisDispatcher

    executor.dispatcher = RedisDispatcher.from_url("redis://127.0.0.1:1/0", "x", liveness_s=30, job_ttl_s=60)
    w = _workload()
    _queue(executor, w)
    executor.heartbeat()
    assert w.ti.key in executor.queued_tasks and w.ti.key not in executor.running


@pytest.fixture()
def small_redis(tmp_path: Path) -> Iterator[Any]:
    """A redis-server of its own whose maxmemory a test can lower (OOM mid-pipeline)."""
    from tests.servers import RedisServer

    server = RedisServer(tmp_path / "small-redis", extra=["--maxmemory-policy", "noeviction"]).start()
    yield server
    server.stop()


def test_a_batch_that_failed_half_way_is_resubmitted_without_placing_a_try_twice(
        small_redis: Any, tmp_path: Path) -> None:
    """Redis runs the first scripts of a submit pipeline, then refuses the rest (OOM). The executor
    keeps running (StoreUnavailable, not an exception out of the scheduler loop) and retries with
    the same job ids, so the tries already placed on an agent are not placed a second time."""
    env = {"AIRFLOW_HOME": str(tmp_path), "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{tmp_path}/airflow.db",
           "AIRFLOW__EDGEEXEC__REDIS_URL": small_redis.url, "AIRFLOW__EDGEEXEC__REDIS_PREFIX": "oom",
           "AIRFLOW__API_AUTH__JWT_SECRET": "not-used-here"}
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    client = redis.Redis.from_url(small_redis.url, decode_responses=True)
    try:
        from edgeexec import EdgeExecutor

        ex = EdgeExecutor(parallelism=50)
        ex.job_id = 7
        ex.start()
        lua = Lua(client, Keys("oom"))
        lua.register("wide", 50)
        client.config_set("maxmemory", int(client.info("memory")["used_memory"]) + 300_000)
        work = [_workload() for _ in range(20)]
        for w in work:
            w.token = "t" * 40_000  # big workloads: the pipeline runs out of memory part-way
        _queue(ex, *work)
        ex.heartbeat()
        placed = sorted(client.smembers(Keys("oom").agent_jobs("wide")))
        assert 0 < len(placed) < 20, "the first submit was meant to fail half-way"
        client.config_set("maxmemory", 0)
        # one of the applied jobs runs and finishes before the retry: its events settle its task,
        # which is then not submitted again
        done = placed[0]
        key = next(k for k, v in ex._by_key.items() if v == done)
        assert key in ex.queued_tasks  # waiting for its retry
        assert lua("accept", "wide", done, 60_000) == "ok"
        lua("finish", "wide", done, "success", "", 0, 60_000, 50)
        ex.sync()
        assert key not in ex.queued_tasks and ex.event_buffer[key][0] == "success"
        ex.heartbeat()
        jobs = [client.hgetall(k) for k in client.scan_iter("oom:job:*")]
        assert len(jobs) == 20, "every try is one job, whatever the retry"
        assert len(client.smembers(Keys("oom").agent_jobs("wide"))) == 19  # the finished one left
        ex.end()
    finally:
        client.close()
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def test_read_only_and_out_of_memory_errors_are_retried_not_raised(small_redis: Any, tmp_path: Path) -> None:
    """READONLY (a failover's old master, here a replica) and OOM reach the executor as
    StoreUnavailable, which it retries; they never end the scheduler loop."""
    from edgeexec.airflow.redis_dispatcher import RedisDispatcher
    from edgeexec.dispatch import JobSpec
    from edgeexec.errors import StoreUnavailable
    from tests.servers import RedisServer

    replica = RedisServer(tmp_path / "replica", extra=["--replicaof", "127.0.0.1", str(small_redis.port)]).start()
    try:
        d = RedisDispatcher.from_url(replica.url, "ro", liveness_s=30, job_ttl_s=60)
        d.start("s")
        with pytest.raises(StoreUnavailable, match="ReadOnlyError"):
            d.submit([JobSpec("j", "r", "task", "q", 1, 0, "w")])
        with pytest.raises(StoreUnavailable):
            d.sweep()
        d.stop(terminate=False)
    finally:
        replica.stop()
    client = redis.Redis.from_url(small_redis.url)
    client.config_set("maxmemory", 1)
    d = RedisDispatcher.from_url(small_redis.url, "oom2", liveness_s=30, job_ttl_s=60)
    d.start("s")
    with pytest.raises(StoreUnavailable, match="OutOfMemoryError"):
        d.submit([JobSpec("j", "r", "task", "q", 1, 0, "w")])
    client.config_set("maxmemory", 0)
    client.close()


def test_a_team_executor_keeps_its_jobs_in_its_team_keyspace(redis_server: Any, keys: Keys,
                                                            monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """EdgeExecutor(team_name=...) reads its team's overrides where they exist and the deployment's
    values otherwise (Airflow's conf.get with a team would fall back to defaults instead), and
    submits into the team's own keyspace."""
    from edgeexec import EdgeExecutor
    from edgeexec.config.lookup import airflow_lookup
    from edgeexec.store.keys import keyspace

    monkeypatch.setenv("AIRFLOW__CORE__MULTI_TEAM", "True")
    monkeypatch.setenv("AIRFLOW__EDGEEXEC__REDIS_URL", redis_server.url)
    monkeypatch.setenv("AIRFLOW__EDGEEXEC__REDIS_PREFIX", keys.prefix)
    monkeypatch.setenv("AIRFLOW__EDGEEXEC__JOB_TTL", "600")
    monkeypatch.setenv("AIRFLOW__TEAM_B___EDGEEXEC__JOB_TTL", "120")
    assert (airflow_lookup("edgeexec", "team_a")("job_ttl"), airflow_lookup("edgeexec", "team_b")("job_ttl"),
            airflow_lookup("edgeexec")("job_ttl")) == ("600", "120", "600")
    assert airflow_lookup("edgeexec", "team_a")("redis_url") == redis_server.url
    ex = EdgeExecutor(parallelism=2, team_name="team_b")
    dispatcher = ex.make_dispatcher()
    assert (ex.settings.team, ex.settings.job_ttl) == ("team_b", 120)
    assert ex.settings.keys().prefix == keyspace(keys.prefix, "team_b") == f"{keys.prefix}:team:team_b"
    assert dispatcher.keys.prefix == f"{keys.prefix}:team:team_b"
    assert EdgeExecutor.supports_multi_team


def test_a_team_batch_executor_reads_its_teams_overrides(monkeypatch: pytest.MonkeyPatch) -> None:
    """BatchExecutor(team_name=...) submits to its team's job queue; other settings are the deployment's."""
    from batchexec import BatchExecutor

    monkeypatch.setenv("AIRFLOW__CORE__MULTI_TEAM", "True")
    monkeypatch.setenv("AIRFLOW__AWS_BATCH_EXECUTOR__JOB_QUEUE", "shared-queue")
    monkeypatch.setenv("AIRFLOW__AWS_BATCH_EXECUTOR__JOB_DEFINITION", "airflow-task")
    monkeypatch.setenv("AIRFLOW__AWS_BATCH_EXECUTOR__REGION_NAME", "eu-west-1")
    monkeypatch.setenv("AIRFLOW__AWS_BATCH_EXECUTOR__JOB_NAME", "airflow-task")
    monkeypatch.setenv("AIRFLOW__TEAM_B___AWS_BATCH_EXECUTOR__JOB_QUEUE", "team-b-queue")
    dispatchers = {team: BatchExecutor(parallelism=2, team_name=team).make_dispatcher() for team in ("team_a", "team_b")}
    settings = {team: d.settings for team, d in dispatchers.items()}
    assert (settings["team_a"].job_queue, settings["team_b"].job_queue) == ("shared-queue", "team-b-queue")
    assert settings["team_b"].job_definition == "airflow-task" and settings["team_b"].region_name == "eu-west-1"
    assert BatchExecutor.supports_multi_team


def _page_socket(token: str, team: str | None) -> Any:
    from starlette.websockets import WebSocket

    scope = {"type": "websocket", "path": "/edgeexec/ui/ws", "query_string": f"team={team}".encode() if team else b"",
             "headers": [(b"authorization", f"Bearer {token}".encode())]}
    return WebSocket(scope, receive=None, send=None)  # type: ignore[arg-type]


async def test_the_page_follows_the_auth_managers_answers_during_a_session(monkeypatch: pytest.MonkeyPatch) -> None:
    """A stand-in auth manager, because the real ones take a user's roles from the token itself
    (SimpleAuthManager) or from a database (FAB): whatever the manager answers at a recheck, the
    session follows: edit withdrawn -> read-only, read withdrawn -> ended, token revoked -> ended;
    another team's fleet is refused from the start."""
    import time

    import jwt

    from edgeexec.airflow import ui_page

    class Manager:
        read, edit = {"team_a", ""}, {"team_a"}

        async def get_user_from_token(self, token: str) -> Any:
            if token.endswith("revoked"):
                raise ValueError("Token has been revoked")
            return SimpleNamespace(get_id=lambda: "7", get_name=lambda: "ops")

        def is_authorized_pool(self, *, method: str, user: Any, details: Any) -> bool:
            return (details.team_name or "") in (self.read if method == "GET" else self.edit)

    manager = Manager()
    monkeypatch.setattr(ui_page, "_auth_manager", lambda: manager)
    users = ui_page.AirflowUsers("http://airflow.example", 5.0, lambda: ["", "team_a", "team_b"])
    token = jwt.encode({"exp": int(time.time()) + 600}, "k" * 32, algorithm="HS256")
    who = await users.identify(_page_socket(token, None))
    assert not isinstance(who, tuple)
    assert (who.team, who.teams, who.manage) == ("team_a", ("team_a", ""), True)
    assert (await users.identify(_page_socket(token, "team_b")))[0] == 403  # type: ignore[index]
    manager.edit = set()
    now = await users.recheck(_page_socket(token, "team_a"), who)
    assert not isinstance(now, str) and not now.manage and now.read_only == ui_page.MANAGE_REFUSED
    manager.read = {""}
    assert await users.recheck(_page_socket(token, "team_a"), now) == ui_page.READ_REFUSED
    revoked = await users.recheck(_page_socket(token + "revoked", "team_a"), who)
    assert isinstance(revoked, str) and "sign in to Airflow again" in revoked


def test_only_edge_executors_and_their_subclasses_count_as_fleets() -> None:
    from edgeexec.airflow.teams import _is_ours

    assert _is_ours("edgeexec.EdgeExecutor") and _is_ours("tests.test_executor.MyEdgeExecutor")
    assert not _is_ours("airflow.executors.local_executor.LocalExecutor")
    assert not _is_ours("no_such_module.Executor") and not _is_ours("batchexec.BatchExecutor")


def __getattr__(name: str) -> Any:
    """``MyEdgeExecutor``: a user's subclass of EdgeExecutor, made on first use (Airflow loads lazily)."""
    if name == "MyEdgeExecutor":
        from edgeexec import EdgeExecutor

        return type("MyEdgeExecutor", (EdgeExecutor,), {})
    raise AttributeError(name)
