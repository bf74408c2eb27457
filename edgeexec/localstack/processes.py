"""Child processes started on free loopback ports and stopped by PID (process group).

Used by `edgeexec standalone`/`demo` and by the test suite: nothing here talks to a shared
instance, and everything started is stopped again.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import IO

BIN = Path(sys.executable).parent
"""Console scripts (airflow, edgeexec, agent) of the running interpreter's environment."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(check: Callable[[], bool], timeout: float, what: str, interval: float = 0.1) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except Exception:  # noqa: BLE001 - not ready yet; retried until the timeout
            pass
        time.sleep(interval)
    raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}")


def port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.2)
        return s.connect_ex(("127.0.0.1", port)) == 0


def http_ok(url: str) -> bool:
    with urllib.request.urlopen(url, timeout=2) as r:
        return bool(r.status == 200)


class Proc:
    """A child process in its own process group, stopped by PID (group) when done."""

    def __init__(self, argv: Sequence[str], *, env: Mapping[str, str] | None = None, log: Path | None = None,
                 cwd: Path | None = None, user: str | None = None) -> None:
        self.argv = list(argv)
        self.log = log
        self._out: IO[bytes] | None = open(log, "ab") if log else None  # noqa: SIM115 - closed in stop()
        self.popen: subprocess.Popen[bytes] = subprocess.Popen(
            self.argv, env=dict(env) if env is not None else None,
            stdout=self._out if self._out is not None else subprocess.DEVNULL,
            stderr=subprocess.STDOUT, cwd=cwd, start_new_session=True, user=user)

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def send(self, sig: int) -> None:
        if self.alive():
            os.kill(self.pid, sig)

    def stop(self, timeout: float = 15.0, sig: int = signal.SIGTERM) -> int | None:
        if self.alive():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.pid, sig)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.pid, signal.SIGKILL)
                self.popen.wait(5)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.pid, signal.SIGKILL)  # anything the leader left behind in its group
        if self._out is not None:
            self._out.close()
        return self.popen.returncode

    def tail(self, lines: int = 40) -> str:
        if not self.log or not self.log.exists():
            return ""
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])


class PortTaken(RuntimeError):
    """Another process answers on the port a server was started on."""


_NEEDS_PASSWORD = -1


class RedisServer:
    """A private redis-server. ``start()`` returns only once *this* process answers on the port:
    a port picked free can be taken by someone else before the server binds it, and then a
    client would silently use the other server (whose data, replication and sentinels are not
    ours)."""

    START_ATTEMPTS = 5

    def __init__(self, workdir: Path, port: int | None = None, appendonly: bool = False,
                 extra: Sequence[str] = ()) -> None:
        self.fixed_port = port is not None
        self.port = port or free_port()
        self.workdir = workdir
        self.appendonly = appendonly
        self.extra = list(extra)
        self.proc: Proc | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        exe = shutil.which("redis-server")
        if not exe:
            raise RuntimeError("redis-server is not installed: run `make demo`/`make test` (they install it) "
                               "or `apt-get install redis-server`")
        self.workdir.mkdir(parents=True, exist_ok=True)
        for _ in range(self.START_ATTEMPTS):
            self.proc = Proc([exe, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                              "--appendonly", "yes" if self.appendonly else "no", "--dir", str(self.workdir),
                              "--daemonize", "no", *self.extra], log=self.workdir / "redis.log")
            try:
                self._wait_serving(self.proc)
                self.fixed_port = True  # a restart must come back on the port clients know
                return self
            except PortTaken:
                self.proc.stop()
                if self.fixed_port:
                    raise PortTaken(f"port {self.port} is taken by another process: stop it, or start this "
                                    "redis-server on another port") from None
                self.port = free_port()
        raise PortTaken(f"no free port held for redis-server after {self.START_ATTEMPTS} attempts")

    def _wait_serving(self, proc: Proc, timeout: float = 15.0) -> None:
        """Return once ``proc`` answers on the port; PortTaken if something else holds the port."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not proc.alive():
                if "Address already in use" in proc.tail(20):
                    raise PortTaken(f"port {self.port} is taken by another process")
                raise RuntimeError(f"redis-server exited at start (exit {proc.popen.returncode}): {proc.tail(10)}")
            if port_open(self.port):
                owner = self.owner_pid()
                if owner == proc.pid or (owner == _NEEDS_PASSWORD and "--requirepass" in self.extra):
                    return  # ours wants a password we cannot send here; another one that does is not ours
            time.sleep(0.05)
        raise TimeoutError(f"timed out after {timeout:.0f} s waiting for redis-server on port {self.port} "
                           f"(log: {self.workdir}/redis.log)")

    def owner_pid(self) -> int | None:
        """The process id of the redis-server answering on our port; ``_NEEDS_PASSWORD`` if it
        wants one; None if what answers is not (yet) a Redis we can ask."""
        import redis

        client = redis.Redis(port=self.port, socket_timeout=2)
        try:
            return int(client.info("server")["process_id"])
        except (redis.AuthenticationError, redis.ResponseError):
            return _NEEDS_PASSWORD
        except (redis.RedisError, OSError, KeyError, ValueError):
            return None
        finally:
            client.close()

    def stop(self) -> None:
        if self.proc:
            self.proc.stop()
