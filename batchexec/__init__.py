"""batchexec: Airflow tasks as AWS Batch jobs, on edgeexec's dispatch interface.

``batchexec.BatchExecutor`` is the class path for ``[core] executor``; resolved lazily so the
container entrypoint does not import the executor machinery.
"""

from __future__ import annotations

from typing import Any

__all__ = ["BatchExecutor"]


def __getattr__(name: str) -> Any:
    if name == "BatchExecutor":
        from batchexec.executor import BatchExecutor

        return BatchExecutor
    raise AttributeError(f"module 'batchexec' has no attribute {name!r}")
