"""Each extra installs in a fresh venv and gives its role what it needs, and nothing of the others.

The wheel is built once; every extra goes into its own new venv (uv, from its cache). The
installed size of each is printed, and what a role must not carry is checked: the gateway has no
Airflow, the agent has no Redis client and no gateway. A command of another extra fails with a
one-line message naming the extra to install.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from edgeexec.localstack.processes import BIN, Proc, free_port, http_ok, wait_for

ROOT = Path(__file__).parent.parent
UV = str(BIN / "uv")
SIZES: dict[str, float] = {}


def _run(*argv: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    built = _run(UV, "build", "--wheel", "--out-dir", str(out), str(ROOT))
    assert built.returncode == 0, built.stderr[-2000:]
    (whl,) = out.glob("edgeexec-*.whl")
    return whl


class Venv:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.python = str(path / "bin" / "python")

    def imports(self, module: str) -> bool:
        return _run(self.python, "-c", f"import {module}").returncode == 0

    def size_mb(self) -> float:
        out = _run("du", "-sm", str(self.path))
        return float(out.stdout.split()[0])


@pytest.fixture(scope="module")
def install(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    made: dict[str, Venv] = {}

    def make(extra: str) -> Venv:
        if extra not in made:
            venv = Venv(tmp_path_factory.mktemp(f"venv-{extra}"))
            created = _run(UV, "venv", "-q", "--python", sys.executable, str(venv.path))
            assert created.returncode == 0, created.stderr
            spec = f"{wheel}[{extra}]" if extra else str(wheel)
            done = _run(UV, "pip", "install", "-q", "--python", venv.python, spec)
            assert done.returncode == 0, f"pip install 'edgeexec[{extra}]' failed:\n{done.stderr[-3000:]}"
            SIZES[extra or "(none)"] = venv.size_mb()
            made[extra] = venv
        return made[extra]

    yield make
    print("\ninstalled size per extra (whole venv, MB): " + ", ".join(f"{k}={v:.0f}" for k, v in SIZES.items()))


def test_gateway_extra_runs_a_gateway_without_airflow(install: Any, redis_server: Any, tmp_path: Path) -> None:
    venv = install("gateway")
    assert not venv.imports("airflow") and not venv.imports("boto3")
    port = free_port()
    proc = Proc([str(venv.path / "bin" / "edgeexec"), "gateway", "--port", str(port), "--redis-url", redis_server.url],
                env={"AIRFLOW__EDGEEXEC__SHARED_SECRET": "x", "AIRFLOW__EDGEEXEC__ALLOW_SHARED_SECRET": "true",
                     "PATH": "/usr/bin:/bin"}, log=tmp_path / "gateway.log")
    try:
        wait_for(lambda: http_ok(f"http://127.0.0.1:{port}/health"), 60, f"the gateway ({proc.tail()})")
    finally:
        proc.stop()
    out = _run(str(venv.path / "bin" / "agent"), "start", "--token", "x")
    assert out.returncode == 2 and "pip install 'edgeexec[agent]'" in out.stderr, out.stderr


def test_agent_extra_has_the_runner_and_not_the_gateway(install: Any) -> None:
    venv = install("agent")
    assert venv.imports("agent.child") and venv.imports("agent.core")  # Airflow's runtime, websockets
    assert not venv.imports("redis") and not venv.imports("prometheus_client") and not venv.imports("boto3")
    assert _run(str(venv.path / "bin" / "agent"), "start", "--help").returncode == 0
    out = _run(str(venv.path / "bin" / "edgeexec"), "gateway")
    assert out.returncode == 2 and "pip install 'edgeexec[gateway]'" in out.stderr, out.stderr


def test_scheduler_and_batch_extras_import_their_executors(install: Any) -> None:
    assert install("scheduler").imports(
        "edgeexec.airflow.executor, edgeexec.airflow.redis_dispatcher, edgeexec.airflow.task_logs")
    batch = install("batch")
    assert batch.imports("batchexec.executor, batchexec.entrypoint") and not batch.imports("redis")


def test_the_bare_package_is_only_the_protocol(install: Any) -> None:
    venv = install("")
    assert venv.imports("edgeexec.protocol")
    assert not venv.imports("airflow") and not venv.imports("redis") and not venv.imports("websockets")
