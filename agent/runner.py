"""Starts each workload in its own process, forked from a forkserver with Airflow preloaded.

One process is always forked ahead and waits on a pipe (the standby): a job's start hands it
the workload, so the fork (about 10 ms with Airflow's heap) is off the job's critical path,
as a worker pool's idle process is. The next standby is forked a moment later (``REFILL_DELAY_S``),
so that it does not compete with the starting task for the cores.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import os
import signal
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from multiprocessing.connection import Connection
from multiprocessing.context import ForkServerContext
from multiprocessing.process import BaseProcess

from agent import spawn
from agent.errors import RunnerError
from agent.proctree import kill_tree

log = logging.getLogger(__name__)
ExitCallback = Callable[[str, int], None]
REFILL_DELAY_S = 0.3


@dataclass
class _Proc:
    process: BaseProcess
    slots: int
    kill_handle: asyncio.TimerHandle | None = None


@dataclass
class _Standby:
    process: BaseProcess
    conn: Connection


class Runner:
    """Owns the job processes; reports each exit code through ``on_exit`` on the event loop."""

    def __init__(self, loop: asyncio.AbstractEventLoop, on_exit: ExitCallback, server: str) -> None:
        self.loop = loop
        self.on_exit = on_exit
        self.server = server
        self.ctx: ForkServerContext = multiprocessing.get_context("forkserver")  # type: ignore[assignment]
        self.ctx.set_forkserver_preload(["agent.child", "agent.cli"])
        self.procs: dict[str, _Proc] = {}
        # forks go through one thread: the forkserver serves them one at a time anyway, and the
        # event loop (heartbeats) must never wait for it
        self._forker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="edgeexec-fork")
        self._standby: asyncio.Future[_Standby] | None = None  # the one forked ahead, not yet given a job
        self._closed = False

    async def warm(self) -> None:
        """Return once the forkserver has imported Airflow and the first standby is forked, so the
        agent connects only when it can start a task at once (the preload takes many seconds on
        a busy host, and a start would otherwise wait for it)."""
        self._refill()
        assert self._standby is not None
        await self._standby

    def _refill(self) -> None:
        if self._standby is None and not self._closed:
            self._standby = asyncio.ensure_future(self.loop.run_in_executor(self._forker, self._fork_standby))

    def _fork_standby(self) -> _Standby:
        receive, send = self.ctx.Pipe(duplex=False)
        proc = self.ctx.Process(target=spawn.standby, args=(receive, os.getpid(), self.server),
                                name="edgeexec-standby")
        proc.start()
        receive.close()
        return _Standby(proc, send)

    async def _take_standby(self) -> _Standby:
        self._refill()
        if self._standby is None:
            raise RunnerError("the agent is stopping: no new task processes")
        pending, self._standby = self._standby, None
        standby = await pending
        # The next one is forked a moment later, not while this job's process starts up on the same
        # cores; a start that comes sooner forks its own at once (above).
        self.loop.call_later(REFILL_DELAY_S, self._refill)
        return standby

    async def start(self, job: str, workload_json: str, slots: int) -> int:
        for attempt in (1, 2):  # a standby that died while waiting (OOM killer, a stray signal): take the next
            try:
                standby = await self._take_standby()
            except OSError as exc:
                raise RunnerError(f"could not start a process for job {job}: {exc}") from exc
            try:
                standby.conn.send_bytes(workload_json.encode())
            except OSError as exc:
                log.warning("standby process %s was gone (%s); using the next one", standby.process.pid, exc)
                standby.process.join(timeout=1)
                if attempt == 2:
                    raise RunnerError(f"could not start a process for job {job}: {exc}") from exc
                continue
            finally:
                standby.conn.close()
            self.procs[job] = _Proc(standby.process, slots)
            self.loop.add_reader(standby.process.sentinel, self._reap, job)
            assert standby.process.pid is not None
            return standby.process.pid
        raise AssertionError("unreachable")

    async def close(self) -> None:
        """Let the standby go: closing its pipe ends it (so does the agent's death). Left open,
        multiprocessing's exit handler would wait for it forever."""
        self._closed = True
        pending, self._standby = self._standby, None
        if pending is not None:
            try:
                standby = await pending
            except OSError:
                standby = None
            if standby is not None:
                standby.conn.close()
                await self.loop.run_in_executor(self._forker, standby.process.join, 5)
                if standby.process.exitcode is None:
                    standby.process.kill()
        self._forker.shutdown(wait=False)

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

