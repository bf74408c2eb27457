"""edgeexec: push dispatch for Apache Airflow 3.

``edgeexec.EdgeExecutor`` is the class path for ``[core] executor``. It is resolved lazily so that
the gateway and the agent, which import edgeexec's protocol, never pay for importing Airflow core.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"
"""The one place the edgeexec version is defined (packaging reads it from here)."""

__all__ = ["EdgeExecutor", "__version__"]


def __getattr__(name: str) -> Any:
    if name in ("EdgeExecutor", "DispatchExecutor"):
        from edgeexec.airflow import executor

        return getattr(executor, name)
    raise AttributeError(f"module 'edgeexec' has no attribute {name!r}")
