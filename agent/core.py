"""The agent's event loop: one WebSocket session at a time, jobs that outlive sessions.

Theory of operation
-------------------
Jobs belong to the agent process, not to a WebSocket session. Their bookkeeping (claims, starts,
cancels, unacked results, what a hello lists) is the pure ``JobBook`` in agent/jobs.py, where the
rules that make a reconnect lose no result and run nothing twice are written and tested; this
module does the I/O it asks for: the session, the frames, forking and signalling processes.

Signals follow the Edge provider: SIGINT drains (no new jobs; running ones finish), SIGTERM drains
and terminates running jobs (SIGTERM, then SIGKILL after ``kill_grace``). A second signal of
either kind escalates to terminate. The agent exits once it has no jobs and nothing unacked.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import signal
import ssl
import uuid
from collections.abc import Coroutine
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus, WebSocketException

from agent import metrics
from agent.errors import FatalConnectError, RunnerError
from agent.jobs import JobBook, Phase, StartKind
from agent.journal import Journal
from agent.local_control import LocalControlServer
from agent.logtail import LogTailer, default_log_folder
from agent.reconnect import backoff_delay, close_code_is_fatal, http_status_is_fatal
from agent.runner import Runner
from agent.settings import AgentSettings, scrub_secrets
from edgeexec import __version__
from edgeexec import protocol as p
from edgeexec.states import derive_agent_state

log = logging.getLogger(__name__)
WELCOME_TIMEOUT = 30.0
ACK_WAIT_AFTER_DRAIN = 30.0


def _versions() -> dict[str, str]:
    out = {"edgeexec": __version__}
    with contextlib.suppress(PackageNotFoundError):
        out["airflow"] = version("apache-airflow-core")
    return out


class Agent:
    def __init__(self, settings: AgentSettings) -> None:
        self.s = settings
        self.queues, self.concurrency = settings.queues, settings.concurrency
        self.instance = uuid.uuid4().hex
        self.book = JobBook()
        """Every job's phase (agent/jobs.py); this class does the I/O it asks for."""
        self._before_change: tuple[tuple[str, ...], int] | None = None
        self.draining = False
        self.maintenance = False
        self.comments = ""
        self.ws: ClientConnection | None = None
        self.heartbeat_interval = 10.0
        self.protocol = max(p.PROTOCOL_VERSIONS)
        self.runner: Runner | None = None
        self._stopped = asyncio.Event()
        self._drained_at: float | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self.logs = LogTailer(settings.log_folder or default_log_folder())
        self.journal = Journal(settings.journal, settings.name)

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        """Fire-and-forget from sync callbacks (signals, process exits), keeping a reference."""
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # ------------------------------------------------------------------ state

    @property
    def running(self) -> dict[str, int]:
        """Jobs told to start: those whose process is being forked count as running already."""
        return self.book.running

    @property
    def used(self) -> int:
        return self.book.used

    @property
    def state(self) -> str:
        return derive_agent_state(has_jobs=self.book.has_jobs, draining=self.draining,
                             maintenance=self.maintenance)

    def record(self) -> p.AgentRecord:
        """This agent as the status stream shows agents (for the local control socket)."""
        return {"name": self.s.name, "state": self.state, "connected": self.ws is not None,
                "queues": list(self.queues), "concurrency": self.concurrency, "used": self.used,
                "metrics": metrics.snapshot(), "comments": self.comments, "maintenance": self.maintenance,
                "jobs": [{"job": j, "ref": "", "state": p.JobState.RUNNING} for j in self.running]}

    def operator(self, action: str, comments: str) -> None:
        """A command from the local control socket; the gateway hears of it as a status frame."""
        if action in (p.Action.MAINTENANCE_ON, p.Action.MAINTENANCE_OFF):
            self.maintenance, self.comments = action == p.Action.MAINTENANCE_ON, comments
            self._spawn(self._send(p.AgentStatus(state=self.state, comments=self.comments)))
        else:
            self.drain(action == p.Action.SHUTDOWN)

    def _done(self) -> bool:
        if self._stopped.is_set():
            return True
        if not self.draining or self.book.has_jobs:
            return False
        if not self.book.unacked:
            return True
        loop = asyncio.get_running_loop()
        self._drained_at = self._drained_at or loop.time()
        return loop.time() - self._drained_at > ACK_WAIT_AFTER_DRAIN

    # ------------------------------------------------------------------ main loop

    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGINT, self.drain, False)
        loop.add_signal_handler(signal.SIGTERM, self.drain, True)
        gone = scrub_secrets(os.environ, self.s.token)  # before the forkserver copies the environment
        if gone:
            log.info("removed %s from the environment tasks inherit", ", ".join(sorted(gone)))
        self.runner = Runner(loop, self._job_exited, self.s.execution_api_url)
        log.info("agent %s: loading Airflow into the task forkserver", self.s.name)
        await self.runner.warm()
        local = LocalControlServer(self, self.s.name)
        await local.start()
        try:
            return await self._serve()
        finally:
            await local.stop()
            await self.runner.close()

    async def _serve(self) -> int:
        log.info("agent %s ready: queues=%s concurrency=%d gateway=%s",
                 self.s.name, ",".join(self.queues), self.concurrency, self.s.url)
        attempt = 0
        while not self._done():
            try:
                if await self._connect_once():
                    attempt = 0
            except FatalConnectError as exc:
                log.error("%s", exc)
                self.drain(True)
                return 2
            except (OSError, WebSocketException, TimeoutError, p.ProtocolError) as exc:
                log.warning("connection to %s failed: %s", self.s.url, exc)
            if self._done():
                break
            delay = backoff_delay(attempt, random.random(), cap=self.s.max_backoff)
            attempt += 1
            log.info("reconnecting in %.1f s", delay)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopped.wait(), delay)
        if self.book.unacked:
            log.warning("exiting with %d job result(s) not acknowledged by a gateway", len(self.book.unacked))
        log.info("agent %s stopped", self.s.name)
        return 0

    async def _connect_once(self) -> bool:
        """One session; True if it got as far as a welcome (resets the backoff)."""
        headers = {"Authorization": f"Bearer {self.s.token}"}
        ctx = None
        if self.s.url.startswith("wss://"):
            ctx = ssl.create_default_context(cafile=self.s.ca_file or None)
        try:
            async with connect(self.s.url, additional_headers=headers, max_size=None, compression=None,
                               open_timeout=WELCOME_TIMEOUT, ping_interval=None,
                               ssl=ctx) as ws:
                await self._session(ws)
                return True
        except InvalidStatus as exc:
            status = exc.response.status_code
            body = exc.response.body.decode(errors="replace") if exc.response.body else ""
            msg = f"gateway refused the connection: HTTP {status} {body.strip()}"
            if http_status_is_fatal(status):
                raise FatalConnectError(msg) from None
            raise ConnectionError(msg) from None

    async def _session(self, ws: ClientConnection) -> None:
        await ws.send(p.encode(self._hello()).decode())
        welcome = p.decode(await asyncio.wait_for(ws.recv(), WELCOME_TIMEOUT), allowed=p.GATEWAY_FRAMES)
        if isinstance(welcome, p.Error):
            self._refused(welcome)
        if not isinstance(welcome, p.Welcome):
            raise p.ProtocolError(f"expected welcome, got {welcome.TYPE}")
        # registered: Redis has returned the unstarted claims to pending (not before: a hello
        # lost in a failover must list them again, or they would turn into failed tries)
        resend = self.book.welcomed()
        self._before_change = None
        for warning in welcome.warnings:
            log.warning("gateway: %s", warning)
        self.ws, self.heartbeat_interval, self.protocol = ws, welcome.heartbeat_interval, welcome.protocol
        self.logs.max_piece = p.log_piece_limit(welcome.max_frame)
        await self._adopt_maintenance(welcome)
        log.info("connected to %s (session %s)", self.s.url, welcome.session[:8])
        for report in resend:
            await self._send(report)
        beat = asyncio.create_task(self._heartbeats(ws))
        tail = asyncio.create_task(self._stream_logs())
        try:
            await self._check_drained()
            async for raw in ws:
                await self._handle(p.decode(raw, allowed=p.GATEWAY_FRAMES))
        except ConnectionClosed:
            pass
        finally:
            beat.cancel()
            tail.cancel()
            self.ws = None
            self.book.session_ended()
        code = ws.close_code
        if close_code_is_fatal(code):
            raise FatalConnectError(f"gateway closed the session: {code} {ws.close_reason}")
        if not self._done():
            log.warning("session closed (%s %s)", code, ws.close_reason or "")

    def _refused(self, error: p.Error) -> None:
        """The gateway refused the hello. After an operator's set-queues/set-concurrency that the
        token does not allow, go back to what was registered before instead of exiting."""
        if self._before_change is not None and error.code in (p.CloseCode.FORBIDDEN, p.CloseCode.INVALID_HELLO):
            log.error("the gateway refused the new queues/concurrency (%s); keeping the previous ones", error.message)
            self.queues, self.concurrency = self._before_change
            self._before_change = None
            raise ConnectionError(f"gateway refused the new registration: {error.message}")
        if close_code_is_fatal(error.code):
            raise FatalConnectError(f"gateway refused this agent: {error.message}")
        raise ConnectionError(f"gateway refused this agent for now: {error.message}")

    async def _adopt_maintenance(self, welcome: p.Welcome) -> None:
        """The fleet record is the operator's: maintenance set or cleared while away applies now."""
        if welcome.maintenance and not self.maintenance:
            log.info("the fleet record says this agent is in maintenance (%s)", welcome.comments or "no comment")
            self.maintenance, self.comments = True, welcome.comments
        elif welcome.maintenance_cleared and self.maintenance:
            log.info("an operator ended this agent's maintenance while it was disconnected")
            self.maintenance, self.comments = False, ""
        else:
            return
        await self._send(p.AgentStatus(state=self.state, comments=self.comments))

    def _hello(self) -> p.Hello:
        return p.Hello(name=self.s.name, instance=self.instance, queues=self.queues,
                       concurrency=self.concurrency, versions=_versions(), jobs=self.book.hello_jobs(),
                       state=self.state, comments=self.comments, team=self.s.team)

    async def _send(self, frame: p.Frame) -> None:
        ws = self.ws
        if ws is None:
            return
        try:
            await ws.send(p.encode_for(frame, self.protocol).decode())
        except ConnectionClosed:
            log.debug("could not send %s: session closed; it will be resent", frame.TYPE)

    async def _heartbeats(self, ws: ClientConnection) -> None:
        """Heartbeat, and a ping with it: a silent network (a cut, not a close) is noticed in
        about two heartbeat intervals instead of TCP's minutes, and the agent reconnects."""
        while True:
            frame = p.Heartbeat(used=self.used, metrics=metrics.snapshot(), state=self.state)
            await self._send(frame)
            started = asyncio.get_running_loop().time()
            try:
                pong = await ws.ping()
                await asyncio.wait_for(pong, self.dead_after)
            except TimeoutError:
                log.warning("no answer from the gateway for %.0f s: treating the connection as dead", self.dead_after)
                ws.transport.abort()
                return
            except ConnectionClosed:
                return
            elapsed = asyncio.get_running_loop().time() - started
            await asyncio.sleep(max(0.0, self.heartbeat_interval - elapsed))

    @property
    def dead_after(self) -> float:
        return max(2 * self.heartbeat_interval, 5.0)

    async def _stream_logs(self) -> None:
        while True:
            await asyncio.sleep(self.s.log_interval)
            for job in list(self.running):
                for chunk in self.logs.chunks(job):
                    await self._send(chunk)

    # ------------------------------------------------------------------ frames from the gateway

    async def _handle(self, frame: p.Frame) -> None:
        if isinstance(frame, p.Run):
            await self._claim(frame)
        elif isinstance(frame, p.Start):
            self._spawn(self._start(frame.job))  # a fork must not hold up the frames behind it
        elif isinstance(frame, p.Ack):
            self.book.acked(frame.job)
            await self._check_drained()
        elif isinstance(frame, p.Cancel):
            self._cancel(frame.job, frame.reason)
        elif isinstance(frame, p.Command):
            await self._command(frame)
        elif isinstance(frame, p.Error):
            log.warning("gateway error %d: %s", frame.code, frame.message)

    async def _claim(self, frame: p.Run) -> None:
        await self._send(self.book.offer(frame, state=self.state, concurrency=self.concurrency))

    async def _start(self, job: str) -> None:
        outcome = self.book.start(job)
        if outcome.kind is StartKind.REPORT and outcome.report is not None:
            await self._send(outcome.report)  # withdrawn before Redis answered: must not hang as running
        elif outcome.kind is StartKind.LATE:
            log.info("job %s: start arrived as its session ended; it returns to pending", job)
        if outcome.kind is not StartKind.FORK or outcome.job is None:
            return
        assert self.runner is not None
        workload, slots = outcome.job.workload, outcome.job.slots
        try:
            pid = await self.runner.start(job, workload, slots)
        except RunnerError as exc:
            log.error("%s", exc)
            await self._send(self.book.fork_failed(job, str(exc)))
            return
        cancelled_meanwhile = self.book.forked(job)
        self.journal.started(job, pid, workload)
        self.logs.watch(job, workload)
        log.info("job %s started (pid %d, %d slot(s))", job, pid, slots)
        if cancelled_meanwhile:
            self.runner.terminate(job, self.s.kill_grace)

    def _cancel(self, job: str, reason: str) -> None:
        found = self.book.cancel(job, reason)
        if found is Phase.CLAIMED:
            log.info("job %s withdrawn before it started: %s", job, reason)
        elif found is not None and self.runner:
            log.info("cancelling job %s: %s", job, reason)
            self.runner.terminate(job, self.s.kill_grace)  # one still being forked: when forked

    async def _command(self, frame: p.Command) -> None:
        log.info("operator command: %s%s", frame.action, f" ({frame.comments})" if frame.comments else "")
        rule = p.ACTIONS[p.Action(frame.action)]
        if not rule.agent:
            log.warning("ignoring %r: the gateway does it on the agent's record, it is not for an agent", frame.action)
            return
        if rule.registers:
            self._before_change = self._before_change or (self.queues, self.concurrency)
            self.queues = frame.queues or self.queues
            self.concurrency = frame.concurrency or self.concurrency
            if self.ws is not None:  # a new hello registers the new queues/concurrency
                await self.ws.close(1000, "re-registering with new queues/concurrency")
        else:
            self.operator(frame.action, frame.comments)

    # ------------------------------------------------------------------ jobs and drain

    def _job_exited(self, job: str, code: int) -> None:
        self.journal.exited(job, code)
        report = self.book.exited(job, code)
        log.info("job %s finished: %s%s", job, report.state.value, f" ({report.reason})" if report.reason else "")
        self._spawn(self._after_exit(report))

    async def _after_exit(self, report: p.StateReport) -> None:
        for chunk in self.logs.chunks(report.job, final=True):
            await self._send(chunk)
        await self._send(report)
        await self._check_drained()

    def drain(self, terminate: bool) -> None:
        """Stop taking jobs; with ``terminate`` (or on a second signal) also stop the running ones."""
        terminate = terminate or self.draining
        self.draining = True
        log.info("draining%s: %d job(s) running", " and terminating jobs" if terminate else "", len(self.running))
        loop = asyncio.get_running_loop()
        self._spawn(self._send(p.AgentStatus(state=self.state, comments=self.comments)))
        if terminate:
            for job in [*self.running, *self.book.claimed]:
                self._cancel(job, "agent shutting down")
        elif self.s.drain_timeout > 0:
            loop.call_later(self.s.drain_timeout, self._drain_timed_out)
        self._spawn(self._check_drained())

    def _drain_timed_out(self) -> None:
        if self.running:
            log.warning("drain timeout of %.0f s reached: terminating %d job(s)", self.s.drain_timeout,
                        len(self.running))
            for job in list(self.running):
                self._cancel(job, f"drain timeout of {self.s.drain_timeout:g} s reached")

    async def _check_drained(self) -> None:
        if not self._done():
            return
        ws = self.ws
        if ws is not None:
            await self._send(p.Bye(reason="drained"))
            await ws.close()
        self._stopped.set()
