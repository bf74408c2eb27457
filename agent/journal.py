"""The agent's execution journal: one JSON line per job start and exit, appended on the agent's disk.

Why: when an operator asks "did this task run here, and how often?" after a crash, a network cut
or a gateway restart, Redis only holds the latest state. The journal is what the host itself
saw: every process it started for a task instance and try, and how that process ended. The
fault-injection suite reads it to prove that no try ran twice.

Lines carry the task's identity, never the workload's token.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path
from typing import Any

import orjson

log = logging.getLogger(__name__)
_TI_FIELDS = ("id", "dag_id", "task_id", "run_id", "map_index", "try_number")


def task_identity(workload_json: str) -> dict[str, Any]:
    """The task instance fields of an ExecuteTask workload ({} for callbacks or unknown shapes)."""
    try:
        ti = orjson.loads(workload_json).get("ti")
    except (orjson.JSONDecodeError, AttributeError):
        return {}
    if not isinstance(ti, dict):
        return {}
    return {f"ti_{k}" if k == "id" else k: ti[k] for k in _TI_FIELDS if k in ti}


class Journal:
    """Appends are single ``write`` calls on an O_APPEND file: lines never interleave or tear."""

    def __init__(self, path: str, agent: str) -> None:
        self.path = Path(path) if path else None
        self.agent = agent
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)

    def _write(self, record: dict[str, Any]) -> None:
        if self.path is None:
            return
        line = orjson.dumps({"ts": round(time.time(), 3), "agent": self.agent, **record}) + b"\n"
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
            try:
                os.write(fd, line)
            finally:
                os.close(fd)
        except OSError:
            log.exception("could not append to the execution journal %s", self.path)

    def started(self, job: str, pid: int, workload_json: str) -> None:
        self._write({"event": "start", "job": job, "pid": pid, **task_identity(workload_json)})

    def exited(self, job: str, exit_code: int) -> None:
        self._write({"event": "exit", "job": job, "exit": exit_code})


def read(path: str | Path) -> list[dict[str, Any]]:
    """Every record of a journal file (missing file: none)."""
    p = Path(path)
    if not p.exists():
        return []
    return [orjson.loads(line) for line in p.read_bytes().splitlines() if line.strip()]
