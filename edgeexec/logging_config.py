"""Kept at this path for ``[logging] logging_config_class = edgeexec.logging_config.LOGGING_CONFIG``;
the code lives in edgeexec/airflow/logging_config.py."""

from edgeexec.airflow.logging_config import LOGGING_CONFIG

__all__ = ["LOGGING_CONFIG"]
