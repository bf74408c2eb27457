"""Session fixtures: a private redis-server for the whole run, and a clean key prefix per test."""

from __future__ import annotations

import contextlib
import os
import sys
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import orjson
import pytest
import redis

from edgeexec.localstack.processes import BIN, Proc, free_port, port_open, wait_for
from edgeexec.store.keys import Keys
from tests.servers import RedisServer
from tests.tiers import MARKED_TIERS, tier_of

TESTS = Path(__file__).resolve().parent


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark every test with its file's tier (tests/tiers.py), so `make fast` can leave them out."""
    for item in items:
        tier = tier_of(Path(str(item.path)).resolve(), TESTS)
        if tier in MARKED_TIERS:
            item.add_marker(getattr(pytest.mark, tier))


AIRFLOW_MARKS = frozenset({"airflow", "e2e", "faults"})


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """`make fast` promises no Airflow: when no selected test is of a tier that needs it, a test that
    loaded it in this process anyway belongs to the airflow tier."""
    selected = getattr(session, "items", [])
    needs_airflow = any(m.name in AIRFLOW_MARKS for item in selected for m in item.iter_markers())
    if selected and not needs_airflow and "airflow" in sys.modules and exitstatus == 0:
        session.config.get_terminal_writer().line(
            "Airflow was imported although the airflow tier was deselected: mark the test that loads it "
            "with @pytest.mark.airflow (or its file in tests/tiers.py)", red=True)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = RedisServer(Path(tmp_path_factory.mktemp("redis"))).start()
    yield server
    server.stop()


def assert_private(server: RedisServer) -> None:
    """The session's Redis is still the one this session started: its own process, a master, no
    replica. A redis-server taken over from outside (a stray sentinel demoting it to a replica
    replaces its data and silently drops the last writes) fails the test that saw it, by name,
    instead of making a later assertion fail for no visible reason."""
    client = redis.Redis(port=server.port, decode_responses=True, socket_timeout=10)
    try:
        pid = int(client.info("server")["process_id"])
        repl: Any = client.info("replication")
    finally:
        client.close()
    assert server.proc is not None and pid == server.proc.pid, \
        f"port {server.port} is served by process {pid}, not the session's redis-server"
    assert repl["role"] == "master" and not repl.get("connected_slaves"), \
        f"the session's redis-server was made a {repl['role']} with {repl.get('connected_slaves', 0)} replica(s) " \
        f"(master: {repl.get('master_host')}:{repl.get('master_port')}): something outside the session reconfigured it"


@pytest.fixture(autouse=True)
def _session_redis_stays_private(request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    if "redis_server" in request.fixturenames:
        assert_private(request.getfixturevalue("redis_server"))


@pytest.fixture()
def keys() -> Keys:
    """Each test gets its own prefix in the session's Redis, so tests never see each other's state."""
    return Keys(f"t{uuid.uuid4().hex[:10]}")


@pytest.fixture()
def rclient(redis_server: RedisServer) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_server.url, decode_responses=True)
    yield client
    client.close()


class BatchEndpoint:
    """moto's AWS Batch API with the stand-in compute environment, plus the resources jobs need."""

    def __init__(self, port: int, control_port: int, proc: Any) -> None:
        self.port, self.control_port, self.proc = port, control_port, proc
        self.url = f"http://127.0.0.1:{port}"
        self.client = boto3.client("batch", region_name=REGION, endpoint_url=self.url,
                                   aws_access_key_id="testing", aws_secret_access_key="testing")
        iam = boto3.client("iam", region_name=REGION, endpoint_url=self.url,
                           aws_access_key_id="testing", aws_secret_access_key="testing")
        self.role = iam.create_role(RoleName="edgeexec-batch", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
        env = self.client.create_compute_environment(computeEnvironmentName="edgeexec-ce", type="UNMANAGED",
                                                     state="ENABLED", serviceRole=self.role)
        self.queue = self.client.create_job_queue(
            jobQueueName="edgeexec-queue", state="ENABLED", priority=1,
            computeEnvironmentOrder=[{"order": 1, "computeEnvironment": env["computeEnvironmentArn"]}])["jobQueueName"]

    def job_queue(self, name: str) -> str:
        """One more job queue on the stand-in compute environment."""
        env = self.client.describe_compute_environments()["computeEnvironments"][0]["computeEnvironmentArn"]
        self.client.create_job_queue(jobQueueName=name, state="ENABLED", priority=1,
                                     computeEnvironmentOrder=[{"order": 1, "computeEnvironment": env}])
        return name

    @contextlib.contextmanager
    def injecting(self, rules: list[dict[str, Any]]) -> Iterator[None]:
        """Faults answered at the HTTP endpoint (tests/batch_standin.py), cleared on the way out."""
        def post(body: list[dict[str, Any]]) -> None:
            req = urllib.request.Request(f"http://127.0.0.1:{self.control_port}/faults", data=orjson.dumps(body),
                                         method="POST")
            urllib.request.urlopen(req, timeout=5).close()

        post(rules)
        try:
            yield
        finally:
            post([])

    def job_definition(self, name: str, environment: dict[str, str] | None = None) -> str:
        props = {"image": "edgeexec:local", "vcpus": 1, "memory": 512, "command": ["true"],
                 "environment": [{"name": k, "value": v} for k, v in (environment or {}).items()]}
        self.client.register_job_definition(jobDefinitionName=name, type="container", containerProperties=props)
        return name

    def counts(self) -> dict[str, int]:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.control_port}/counts", timeout=5) as r:
            return dict(orjson.loads(r.read()))

    def connection_json(self) -> str:
        return orjson.dumps({"conn_type": "aws", "login": "testing", "password": "testing",
                             "extra": {"endpoint_url": self.url, "region_name": REGION}}).decode()


REGION = "us-east-1"


@pytest.fixture(scope="session")
def batch_endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BatchEndpoint]:
    port, control = free_port(), free_port()
    log = Path(tmp_path_factory.mktemp("moto")) / "standin.log"
    env = {**os.environ, "PATH": f"{BIN}:{os.environ.get('PATH', '')}", "AWS_DEFAULT_REGION": REGION}
    proc = Proc([sys.executable, "-m", "tests.batch_standin", "--port", str(port), "--control-port", str(control)],
                env=env, log=log, cwd=Path(__file__).parent.parent)
    wait_for(lambda: port_open(port) and port_open(control), 60, "the AWS Batch stand-in endpoint")
    yield BatchEndpoint(port, control, proc)
    proc.stop()
