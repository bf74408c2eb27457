"""Kept at this path for ``[logging] logging_config_class = edgeexec.logging_config.LOGGING_CONFIG``
(Airflow reads ``REMOTE_TASK_LOG`` from the same module); the code is edgeexec/airflow/logging_config.py."""

from edgeexec.airflow.logging_config import LOGGING_CONFIG, REMOTE_TASK_LOG

__all__ = ["LOGGING_CONFIG", "REMOTE_TASK_LOG"]
