"""Streams each running job's log file to the gateway, so Airflow can show it without a shared volume."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

import orjson

from edgeexec.protocol import MAX_LOG_PIECE, MAX_STORED_LOG, LogChunk

log = logging.getLogger(__name__)
MAX_CHUNK = MAX_LOG_PIECE


def default_log_folder() -> str:
    """Airflow's [logging] base_log_folder as the task supervisor on this host resolves it."""
    if folder := os.environ.get("AIRFLOW__LOGGING__BASE_LOG_FOLDER"):
        return folder
    home = os.environ.get("AIRFLOW_HOME") or str(Path.home() / "airflow")
    return str(Path(home) / "logs")


def log_path_of(workload_json: str) -> str | None:
    """The workload's relative log path (the JWT in the same JSON is never kept)."""
    try:
        path = orjson.loads(workload_json).get("log_path")
    except (orjson.JSONDecodeError, AttributeError):
        return None
    return path if isinstance(path, str) and path else None


@dataclass
class _Tail:
    path: Path
    offset: int = 0


class LogTailer:
    def __init__(self, folder: str) -> None:
        self.folder = Path(folder)
        self.tails: dict[str, _Tail] = {}
        self.max_piece = MAX_CHUNK
        """Raw bytes per frame; set from the gateway's max_frame (protocol.log_piece_limit)."""

    def watch(self, job: str, workload_json: str) -> None:
        rel = log_path_of(workload_json)
        if rel is not None:
            self.tails[job] = _Tail(self.folder / rel)

    def chunks(self, job: str, *, final: bool = False) -> list[LogChunk]:
        """New complete lines since the last call (everything left, if ``final``)."""
        tail = self.tails.get(job)
        if tail is None:
            return []
        if tail.offset >= MAX_STORED_LOG:  # the gateway keeps no more than this: do not send it
            if final:
                self.tails.pop(job, None)
            return []
        out = []
        try:
            with tail.path.open("rb") as f:
                f.seek(tail.offset)
                data = f.read(MAX_CHUNK * 16)
        except OSError:
            return []
        if not final and b"\n" in data:
            data = data[: data.rindex(b"\n") + 1]
        elif not final:
            data = b""
        for i in range(0, len(data), self.max_piece):
            piece = data[i:i + self.max_piece]
            out.append(LogChunk.of(job, tail.offset, piece))  # bytes as written: the gateway stores them exactly
            tail.offset += len(piece)
        if final:
            self.tails.pop(job, None)
        return out
