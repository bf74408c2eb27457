"""Mounts the gateway into Airflow's API server, as an alternative to running `edgeexec gateway`.

Opt-in with ``[edgeexec] mount_gateway = True`` (``AIRFLOW__EDGEEXEC__MOUNT_GATEWAY``) on the API
server; agents then connect to ``wss://<api-server>/edgeexec/ws/agent``. Every other Airflow
process loads this plugin too and gets nothing from it. The gateway settings come from the same
``[edgeexec]`` section; Redis, tokens and state are shared with any separate gateways.
"""

from __future__ import annotations

import logging
from typing import Any

from airflow.plugins_manager import AirflowPlugin

log = logging.getLogger(__name__)
URL_PREFIX = "/edgeexec"


def _apps() -> list[dict[str, Any]]:
    from edgeexec.config.lookup import airflow_lookup
    from edgeexec.config.settings import GatewaySettings

    settings = GatewaySettings.load(airflow_lookup("edgeexec"))
    if not settings.mount_gateway:
        return []
    from edgeexec.gateway.app import create_app

    log.info("mounting the edgeexec gateway at %s", URL_PREFIX)
    return [{"app": create_app(settings), "url_prefix": URL_PREFIX, "name": "edgeexec gateway"}]


class EdgeexecPlugin(AirflowPlugin):  # type: ignore[misc]
    name = "edgeexec"
    fastapi_apps = _apps()
