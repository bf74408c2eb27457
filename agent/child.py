"""Runs one Airflow workload in a child forked from a forkserver that already imported Airflow.

Preloading this module in the forkserver is the point: a task start is a fork (milliseconds),
not an interpreter start plus Airflow import (seconds on a small machine).
"""

from __future__ import annotations

import logging
import os
import select
import signal
import sys
import threading
import time

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
