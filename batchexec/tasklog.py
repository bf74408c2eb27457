"""Why a Batch job failed, added to the try's own Airflow task log (runs in the scheduler).

A container killed for memory, a host taken back or a job that never started leave the task no
chance to log anything, so the reason would otherwise live only in the scheduler's log. The lines
go to the try's log file under ``[logging] base_log_folder``, in Airflow's structured format, and
through the configured remote logging's upload, which for file stores such as S3 appends to the
try's remote log. A remote log that ships lines only as a task writes them (and uploads nothing
afterwards) does not get this line; the scheduler's log and Airflow's failure info still have it.
"""

from __future__ import annotations

import datetime
import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


def _log_path(key: Any, base: str) -> tuple[Path, Any] | None:
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.log.file_task_handler import FileTaskHandler
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        ti = session.scalar(select(TaskInstance).where(
            TaskInstance.dag_id == key.dag_id, TaskInstance.task_id == key.task_id,
            TaskInstance.run_id == key.run_id, TaskInstance.map_index == key.map_index))
        if ti is None:
            return None
        relative = FileTaskHandler(base_log_folder=base)._render_filename(ti, key.try_number, session=session)
    return Path(base) / str(relative), ti


def append(key: Any, lines: Sequence[str]) -> Path | None:
    """Add ``lines`` (as errors) to the log of the try ``key`` names; the file written, or None."""
    from airflow.configuration import conf
    from airflow.logging_config import get_remote_task_log

    base = conf.get("logging", "base_log_folder")
    found = _log_path(key, base)
    if found is None:
        return None
    path, ti = found
    path.parent.mkdir(parents=True, exist_ok=True)
    stamp = datetime.datetime.now(datetime.UTC).isoformat()
    with path.open("a", encoding="utf-8") as f:
        for line in lines:
            f.write(json.dumps({"timestamp": stamp, "level": "error", "event": line, "logger": "batchexec"}) + "\n")
    remote = get_remote_task_log()
    if remote is not None:
        remote.upload(path, ti)
    return path
