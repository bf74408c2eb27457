"""Airflow logging config that serves finished tasks' logs from what agents streamed.

On the API server: ``[logging] logging_config_class = edgeexec.logging_config.LOGGING_CONFIG``
(``AIRFLOW__LOGGING__LOGGING_CONFIG_CLASS``). Logging itself stays Airflow's default.
"""

from __future__ import annotations

from copy import deepcopy
from typing import Any

from airflow.config_templates.airflow_local_settings import DEFAULT_LOGGING_CONFIG

from edgeexec.airflow.task_logs import EdgeexecTaskLogIO

LOGGING_CONFIG: dict[str, Any] = deepcopy(DEFAULT_LOGGING_CONFIG)
REMOTE_TASK_LOG = EdgeexecTaskLogIO()
