"""Which Airflow teams edgeexec serves ([core] multi_team): those whose executors include ours."""

from __future__ import annotations

import functools
import importlib
import logging
import threading

from edgeexec.protocol import TEAM_NAME

log = logging.getLogger(__name__)
EXECUTOR_PATHS = frozenset({"edgeexec.EdgeExecutor", "edgeexec.airflow.executor.EdgeExecutor"})
_lock = threading.Lock()


def _is_ours(module_path: str) -> bool:
    """EdgeExecutor by either of its paths, or a subclass of it configured by its own path."""
    if module_path in EXECUTOR_PATHS:
        return True
    if module_path.startswith("airflow."):  # Airflow's and its providers' executors are not ours
        return False
    from edgeexec.airflow.executor import EdgeExecutor

    module, _, name = module_path.rpartition(".")
    try:
        cls = getattr(importlib.import_module(module), name, None) if module else None
    except Exception as exc:  # noqa: BLE001 - an executor we cannot import is not ours; Airflow reports it
        log.warning("executor %s cannot be imported here (%s): not counted as an EdgeExecutor", module_path, exc)
        return False
    return isinstance(cls, type) and issubclass(cls, EdgeExecutor)


def edge_teams() -> list[str]:
    """The teams with an EdgeExecutor in ``[core] executor`` ('' = the team-less executors), in
    order; never empty (no EdgeExecutor found: the team-less fleet). Read once per process."""
    with _lock:  # Airflow's executor loader fills its caches without a lock
        return list(_edge_teams())


@functools.cache
def _edge_teams() -> tuple[str, ...]:
    from airflow.executors.executor_loader import ExecutorLoader

    try:
        names = ExecutorLoader.get_executor_names(validate_teams=False)
    except Exception:
        log.exception("could not read [core] executor; edgeexec serves the team-less fleet only")
        return ("",)
    teams = {n.team_name or "" for n in names if _is_ours(n.module_path)}
    return tuple(sorted(t for t in teams if not t or TEAM_NAME.match(t))) or ("",)
