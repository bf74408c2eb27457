"""The agent's task-process runner with real processes: a forkserver with Airflow preloaded,
standby processes, exits reported on the event loop, nothing left behind."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time

import psutil
import pytest

from agent.errors import RunnerError
from agent.runner import Runner

pytestmark = pytest.mark.timeout(180)


class _Exits:
    def __init__(self) -> None:
        self.codes: dict[str, int] = {}
        self.event = asyncio.Event()

    def __call__(self, job: str, code: int) -> None:
        self.codes[job] = code
        self.event.set()

    async def wait(self, job: str) -> int:
        while job not in self.codes:
            self.event.clear()
            await asyncio.wait_for(self.event.wait(), 60)
        return self.codes[job]


def _children() -> set[int]:
    return {p.pid for p in psutil.Process().children(recursive=True)}


async def test_a_job_starts_in_a_standby_and_its_exit_is_reported() -> None:
    """A workload that is not valid JSON fails inside the task process: exit 1, reported once."""
    exits = _Exits()
    runner = Runner(asyncio.get_running_loop(), exits, "http://127.0.0.1:1/execution/")
    await runner.warm()
    pid = await runner.start("job-1", "not a workload", 1)
    assert pid in _children()
    assert await exits.wait("job-1") == 1
    assert "job-1" not in runner.procs
    await runner.close()


async def test_a_standby_that_died_while_waiting_is_replaced() -> None:
    """The OOM killer or a stray signal may take the waiting process: the job still starts."""
    exits = _Exits()
    runner = Runner(asyncio.get_running_loop(), exits, "http://127.0.0.1:1/execution/")
    await runner.warm()
    assert runner._standby is not None
    standby = await runner._standby
    assert standby.process.pid is not None
    os.kill(standby.process.pid, signal.SIGKILL)
    standby.process.join(10)
    pid = await runner.start("job-2", "not a workload", 1)
    assert pid != standby.process.pid
    assert await exits.wait("job-2") == 1
    await runner.close()


async def test_close_leaves_no_process_and_refuses_new_starts() -> None:
    exits = _Exits()
    runner = Runner(asyncio.get_running_loop(), exits, "http://127.0.0.1:1/execution/")
    await runner.warm()
    assert runner._standby is not None
    standbys = [(await runner._standby).process.pid]
    assert standbys and all(pid in _children() for pid in standbys)
    await runner.close()
    assert not any(psutil.pid_exists(pid) for pid in standbys)
    with pytest.raises(RunnerError, match="stopping"):
        await runner.start("job-3", "not a workload", 1)


def test_an_agent_that_exits_leaves_no_standby_behind() -> None:
    """The agent process dies (SIGKILL: no clean-up at all); its standby ends with it."""
    code = (
        "import asyncio, sys\n"
        "from agent.runner import Runner\n"
        "async def main():\n"
        "    r = Runner(asyncio.get_running_loop(), lambda j, c: None, 'http://127.0.0.1:1/')\n"
        "    await r.warm()\n"
        "    s = await r._standby\n"
        "    print('standby', s.process.pid, flush=True)\n"
        "    await asyncio.sleep(3600)\n"
        "asyncio.run(main())\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, start_new_session=True)
    try:
        assert proc.stdout is not None
        line = ""
        while not line.startswith("standby "):
            line = proc.stdout.readline()
            assert line, "the agent stand-in exited early"
        standby = int(line.split()[1])
        assert psutil.pid_exists(standby)
        proc.kill()
        proc.wait(10)
        deadline = time.monotonic() + 30
        while psutil.pid_exists(standby) and psutil.Process(standby).status() != psutil.STATUS_ZOMBIE:
            assert time.monotonic() < deadline, "the standby outlived its agent"
            time.sleep(0.1)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)  # the stand-in and its forkserver, whatever happened
        proc.wait(10)


def test_the_task_sdk_supervisor_still_has_the_shape_the_exit_wake_relies_on() -> None:
    """agent.child makes Airflow's supervisor wait on its task process (not a 5 s sleep) once the
    process closed its sockets. An Airflow upgrade that changes the supervisor fails here, not
    silently in production as slower tasks."""
    code = (
        "import agent.child\n"
        "from airflow.sdk.execution_time.supervisor import ActivitySubprocess\n"
        "print(ActivitySubprocess._service_subprocess.__module__)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert out.stdout.strip().splitlines()[-1] == "agent.child", out.stderr[-2000:]


def test_waiting_for_a_task_process_returns_at_its_exit_and_leaves_it_to_be_reaped() -> None:
    from agent.child import _wait_for_zombie

    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(0.3)"])
    started = time.monotonic()
    _wait_for_zombie(child.pid, 30)
    assert time.monotonic() - started < 25  # returned at the exit, not at the timeout
    assert child.wait(0) == 0  # still reapable by its owner (the supervisor)
