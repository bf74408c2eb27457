"""PostgreSQL for the e2e suite; the generic process helpers live in edgeexec.localstack.processes."""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import subprocess
import tempfile
from pathlib import Path

from edgeexec.localstack.processes import Proc, RedisServer, free_port, port_open, wait_for

__all__ = ["PostgresServer", "Proc", "RedisServer", "free_port", "port_open", "wait_for"]


def _pg_bin(name: str) -> str:
    found = shutil.which(name)
    if found:
        return found
    for d in sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True):
        if (d / name).exists():
            return str(d / name)
    raise RuntimeError(f"{name} not found: run `make test` (it installs postgresql) or apt-get install postgresql")


class PostgresServer:
    """A private PostgreSQL in a temporary directory; initdb refuses root, so it runs as `postgres`."""

    def __init__(self) -> None:
        # not under pytest's tmp dir: that is root-only, and initdb must run as an unprivileged user
        self.workdir = Path(tempfile.mkdtemp(prefix="edgeexec-pg-"))
        self.port = free_port()
        self.proc: Proc | None = None
        self.user = "postgres" if os.geteuid() == 0 else None

    @property
    def url(self) -> str:
        return f"postgresql+psycopg2://postgres@127.0.0.1:{self.port}/airflow"

    def _run(self, argv: list[str]) -> None:
        out = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, user=self.user, text=True)
        if out.returncode != 0:
            raise RuntimeError(f"{' '.join(argv)} failed:\n{out.stdout[-2000:]}")

    def start(self) -> PostgresServer:
        data = self.workdir / "pgdata"
        self.workdir.mkdir(parents=True, exist_ok=True)
        if self.user:
            pw = pwd.getpwnam(self.user)
            os.chown(self.workdir, pw.pw_uid, pw.pw_gid)
        self._run([_pg_bin("initdb"), "-D", str(data), "-U", "postgres", "-A", "trust", "--no-sync", "-E", "UTF8"])
        self.proc = Proc([_pg_bin("postgres"), "-D", str(data), "-p", str(self.port), "-h", "127.0.0.1",
                          "-k", str(self.workdir), "-c", "fsync=off", "-c", "max_connections=200"],
                         log=self.workdir / "postgres.log", user=self.user)
        wait_for(lambda: port_open(self.port), 30, f"postgres on port {self.port}")
        wait_for(lambda: subprocess.run([_pg_bin("createdb"), "-h", "127.0.0.1", "-p", str(self.port), "-U",
                                         "postgres", "airflow"], capture_output=True).returncode == 0,
                 20, "createdb airflow", interval=0.5)
        return self

    def stop(self) -> None:
        if self.proc:
            self.proc.stop(sig=signal.SIGINT)
        shutil.rmtree(self.workdir, ignore_errors=True)


def start_gateway(redis_url: str, prefix: str, log: Path, *flags: str,
                  env: dict[str, str] | None = None) -> tuple[int, Proc]:
    """An `edgeexec gateway` process on a free loopback port, ready to accept; the caller stops it."""
    from edgeexec.localstack.processes import BIN

    port = free_port()
    proc = Proc([str(BIN / "edgeexec"), "gateway", "--port", str(port), "--redis-url", redis_url,
                 "--redis-prefix", prefix, *flags], env={"PATH": str(BIN), **(env or {})}, log=log)
    wait_for(lambda: port_open(port), 30, f"the gateway on port {port} (log: {log})")
    return port, proc
