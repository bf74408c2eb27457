"""Runs one Airflow workload in a child forked from a forkserver that already imported Airflow.

Preloading this module in the forkserver is the point: a task start is a fork (milliseconds),
not an interpreter start plus Airflow import (seconds on a small machine).
"""

from __future__ import annotations

import gc
import logging
import os
import select
import signal
import sys
import threading
import time
from typing import Any

# Heavy imports on purpose, at module level: the forkserver pays them once.
from airflow.executors.base_executor import BaseExecutor
from airflow.executors.workloads import ExecutorWorkload
from airflow.sdk.execution_time import supervisor  # noqa: F401 - preload the Task SDK supervisor
from pydantic import TypeAdapter

from agent.proctree import kill_tree

log = logging.getLogger(__name__)
_WORKLOAD: TypeAdapter[ExecutorWorkload] = TypeAdapter(ExecutorWorkload)


def _wait_for_exit(pid: int) -> None:
    try:
        fd = os.pidfd_open(pid)
        select.select([fd], [], [])
    except (AttributeError, OSError):
        while True:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.5)


def _die_with(agent_pid: int) -> None:
    """Task processes must not outlive their agent: nobody would report or supervise them."""

    def watch() -> None:
        _wait_for_exit(agent_pid)
        kill_tree(os.getpid(), signal.SIGKILL, include_root=False)
        os._exit(137)

    threading.Thread(target=watch, name="agent-watchdog", daemon=True).start()


def run_workload(workload_json: str, agent_pid: int, server: str) -> None:
    os.setsid()  # out of the agent's terminal group: Ctrl-C drains the agent, it does not kill tasks
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _die_with(agent_pid)
    code = 1
    try:
        workload = _WORKLOAD.validate_json(workload_json)
        code = BaseExecutor.run_workload(
            workload, server=server or None, proctitle=f"edgeexec agent job: {workload.display_name}"
        )
    except BaseException:
        log.exception("workload failed to run")
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code if isinstance(code, int) and 0 <= code < 256 else 1)


def _build_task_sdk_caches() -> None:
    """Build once, in the forkserver, what a task process would otherwise build at every start:
    the Task SDK API client's TLS context (system CAs plus certifi: 50-140 ms on a small host),
    the plugins and listeners the task runner loads, and the DAG-parsing modules it imports
    (about a hundred). A worker process that lives across tasks (Celery's) pays that once."""
    try:
        # modules a task process would import: DAG parsing, the supervisor's remote-log lookup,
        # the Connection class its secrets backends are built with, its process title
        import airflow.dag_processing.dagbag
        import airflow.sdk._shared.logging.factory
        import airflow.sdk._shared.logging.remote
        import airflow.sdk.definitions.connection  # noqa: F401
        import setproctitle  # noqa: F401
        from airflow.sdk.api.client import Client
        from airflow.sdk.listener import get_listener_manager

        Client(base_url="http://127.0.0.1", token="forkserver-warm-up").close()
        get_listener_manager()
    except Exception:  # only a start-up cost is at stake
        log.warning("could not pre-load the Task SDK's per-process state; every task start will build it",
                    exc_info=True)


def _wait_for_zombie(pid: int, timeout: float) -> None:
    """Block until ``pid`` has exited (without reaping it) or ``timeout`` passes."""
    try:
        fd = os.pidfd_open(pid)
    except (AttributeError, OSError):  # no pidfd (old kernel): sleep as the supervisor would have
        time.sleep(timeout)
        return
    try:
        select.select([fd], [], [], timeout)
    finally:
        os.close(fd)


def _supervisor_wakes_on_task_exit() -> None:
    """Make the Task SDK supervisor notice its task process's exit at once.

    The task process closes its sockets, then exits. A supervisor that sees the last socket close
    before the exit is complete finds the process still alive, then waits on a selector that has
    nothing left to watch for ``[workers] min_heartbeat_interval`` (5 s by default) before it
    looks again: measured here, a third of 50 trivial tasks held their slot 5 s instead of 0.2 s.
    With no socket left open, wait on the process itself (a pidfd) for the same time instead;
    it returns the moment the process exits. Behaviour is otherwise unchanged, and a Task SDK
    whose supervisor no longer looks like this is left alone.
    """
    from airflow.sdk.execution_time.supervisor import ActivitySubprocess

    original = ActivitySubprocess._service_subprocess
    fields = {f.name for f in getattr(ActivitySubprocess, "__attrs_attrs__", ())}
    if not {"pid", "_exit_code", "_open_sockets"} <= fields:
        log.warning("Task SDK supervisor changed shape; task exits are noticed at its own pace")
        return

    def service(self: Any, max_wait_time: float, *args: Any, **kwargs: Any) -> int | None:
        if self._exit_code is None and not self._open_sockets and max_wait_time > 0:
            _wait_for_zombie(self.pid, max_wait_time)
            max_wait_time = 0
        return original(self, max_wait_time, *args, **kwargs)  # type: ignore[no-any-return]

    ActivitySubprocess._service_subprocess = service  # type: ignore[method-assign]


_build_task_sdk_caches()
_supervisor_wakes_on_task_exit()

# Last statement of the forkserver's preload: move everything imported so far out of the garbage
# collector's reach. A collection in a forked child otherwise writes to every tracked object of
# the inherited heap (hundreds of MB with Airflow imported), turning copy-on-write sharing into a
# full copy and CPU burned on every task start; a long-lived worker pays that once, a fork per
# task would pay it every time. (Airflow's LocalExecutor freezes before forking for the same reason.)
gc.freeze()
