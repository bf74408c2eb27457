"""Starts each workload in its own process, forked from a forkserver with Airflow preloaded."""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import os
import signal
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from multiprocessing.context import ForkServerContext
from multiprocessing.process import BaseProcess

from agent import spawn
from agent.errors import RunnerError
from agent.proctree import kill_tree

log = logging.getLogger(__name__)
ExitCallback = Callable[[str, int], None]


@dataclass
class _Proc:
    process: BaseProcess
    slots: int
    kill_handle: asyncio.TimerHandle | None = None


class Runner:
    """Owns the job processes; reports each exit code through ``on_exit`` on the event loop."""

    def __init__(self, loop: asyncio.AbstractEventLoop, on_exit: ExitCallback, server: str) -> None:
        self.loop = loop
        self.on_exit = on_exit
        self.server = server
        self.ctx: ForkServerContext = multiprocessing.get_context("forkserver")  # type: ignore[assignment]
        self.ctx.set_forkserver_preload(["agent.child"])
        self.procs: dict[str, _Proc] = {}
        # forks go through one thread: the forkserver serves them one at a time anyway, and the
        # event loop (heartbeats) must never wait for it
        self._forker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="edgeexec-fork")

    async def warm(self) -> None:
        """Return once the forkserver has imported Airflow, so the agent connects only when it can
        start a task at once. ``ensure_running`` alone returns before the import is done, and the
        first start would then wait for it (many seconds on a busy host)."""
        probe = self.ctx.Process(target=spawn.ready, name="edgeexec-warm-up")
        await self.loop.run_in_executor(self._forker, _start_and_join, probe)

    async def start(self, job: str, workload_json: str, slots: int) -> int:
        proc = self.ctx.Process(
            target=spawn.run, args=(workload_json, os.getpid(), self.server), name=f"edgeexec-job-{job}"
        )
        try:
            await self.loop.run_in_executor(self._forker, proc.start)
        except OSError as exc:
            raise RunnerError(f"could not start a process for job {job}: {exc}") from exc
        self.procs[job] = _Proc(proc, slots)
        self.loop.add_reader(proc.sentinel, self._reap, job)
        assert proc.pid is not None
        return proc.pid

    def _reap(self, job: str) -> None:
        entry = self.procs.pop(job, None)
        if entry is None:
            return
        self.loop.remove_reader(entry.process.sentinel)
        if entry.kill_handle:
            entry.kill_handle.cancel()
        entry.process.join(timeout=0)
        code = entry.process.exitcode
        entry.process.close()
        self.on_exit(job, -signal.SIGKILL if code is None else code)

    def terminate(self, job: str, grace: float) -> None:
        """SIGTERM the job's tree now, SIGKILL it after ``grace`` seconds if it is still there."""
        entry = self.procs.get(job)
        if entry is None or entry.process.pid is None:
            return
        pid = entry.process.pid
        kill_tree(pid, signal.SIGTERM)
        if entry.kill_handle is None:
            entry.kill_handle = self.loop.call_later(grace, kill_tree, pid, signal.SIGKILL)


def _start_and_join(proc: BaseProcess) -> None:
    proc.start()
    proc.join()
    proc.close()
