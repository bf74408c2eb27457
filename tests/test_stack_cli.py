"""`edgeexec standalone|demo` refuse bad arguments before they start anything, and say what to do."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from edgeexec.errors import ConfigError
from edgeexec.localstack.processes import BIN
from edgeexec.localstack.stack import AgentSpec


def test_agent_specs_parse_and_bad_ones_say_the_format() -> None:
    assert AgentSpec.parse("gpu-1:gpu,default:2") == AgentSpec("gpu-1", ("gpu", "default"), 2)
    assert AgentSpec.parse("edge-2") == AgentSpec("edge-2", ("default",), 8)
    for bad in ("bad name:q", "a:q:zero", "a:q:0", "a:bad queue!"):
        with pytest.raises(ConfigError, match=r"NAME\[:QUEUES\[:CONCURRENCY\]\]|out of range"):
            AgentSpec.parse(bad)


@pytest.mark.parametrize(("args", "needle"), [
    (("demo", "--dags-folder", "{tmp}"), "--dag ID"),
    (("standalone", "--dags-folder", "{tmp}/missing"), "does not exist"),
    (("demo", "--agent", "no good:q"), "NAME[:QUEUES[:CONCURRENCY]]"),
])
def test_bad_stack_arguments_exit_2_before_starting_anything(tmp_path: Path, args: tuple[str, ...],
                                                             needle: str) -> None:
    argv = [a.replace("{tmp}", str(tmp_path)) for a in args]
    out = subprocess.run([str(BIN / "edgeexec"), *argv, "--home", str(tmp_path / "home")], capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 2 and needle in out.stderr, out.stderr
    assert not (tmp_path / "home").exists(), "nothing was started"


def test_the_stack_keeps_the_callers_settings_but_owns_its_wiring(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """Connections, variables and tuning pass through; what would break or expose the stack
    (another database, TLS, an auth manager, a public gateway, a production airflow.cfg) does not."""
    from edgeexec.localstack.stack import LocalStack, StackConfig

    mine = {"AIRFLOW_CONN_WAREHOUSE": "postgresql://w/db", "AIRFLOW_VAR_SITE": "lab",
            "AIRFLOW__CORE__PARALLELISM": "7", "AIRFLOW__CORE__LOAD_EXAMPLES": "True"}
    theirs = {"AIRFLOW__DATABASE__SQL_ALCHEMY_CONN_CMD": "cat /prod", "AIRFLOW__API__SSL_CERT": "/c.pem",
              "AIRFLOW__CORE__AUTH_MANAGER": "x.Y", "AIRFLOW__EDGEEXEC__HOST": "0.0.0.0",
              "AIRFLOW_CONFIG": "/etc/airflow/airflow.cfg", "AIRFLOW__EDGEEXEC__SSL_CERTFILE": "/c.pem"}
    for k, v in {**mine, **theirs}.items():
        monkeypatch.setenv(k, v)
    env = LocalStack(StackConfig(home=tmp_path, dags_folder=tmp_path, inherit_airflow_env=True)).env()
    assert {k: env[k] for k in mine} == mine
    assert not set(theirs) & set(env), {k: env[k] for k in set(theirs) & set(env)}
    isolated = LocalStack(StackConfig(home=tmp_path, dags_folder=tmp_path)).env()
    assert not {k for k, v in mine.items() if isolated.get(k) == v}, "tests start from a clean environment"
