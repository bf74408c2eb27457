"""The Airflow plugin: the fleet page in Airflow's UI, and optionally the gateway, in the API server.

* ``[edgeexec] ui_page`` (default on): Admin → Edge agents, the fleet page signed in as the
  Airflow user (ui_page.py), served at ``/edgeexec/ui/``.
* ``[edgeexec] mount_gateway`` (default off): agents connect to ``wss://<api-server>/edgeexec/ws/agent``
  instead of a separate `edgeexec gateway`; Redis, tokens and state are shared with any others.

Every Airflow process loads this plugin; only the API server serves what it declares. The apps
reach Redis lazily, on their first request.
"""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import urlsplit

from airflow.plugins_manager import AirflowPlugin

log = logging.getLogger(__name__)
URL_PREFIX = "/edgeexec"
PAGE_PATH = "/ui"
"""The fleet page, under URL_PREFIX."""
URL_ROUTE = "edgeexec"
"""Airflow's UI shows the page at ``/plugin/<URL_ROUTE>``."""


def _settings() -> Any:
    """The API server's settings, for the team-less fleet: every team's fleet is reached through
    that team's own overrides (ui_page.py), never through ``[edgeexec] team`` here."""
    from edgeexec.config.lookup import airflow_lookup
    from edgeexec.config.settings import GatewaySettings

    lookup = airflow_lookup("edgeexec")
    if lookup("team"):
        log.warning("[edgeexec] team = %r is ignored in the API server: its page serves every team's fleet "
                    "and a mounted gateway the team-less one; run `edgeexec gateway --team` per team", lookup("team"))
    return GatewaySettings.load(lookup, team="")


def _base_url() -> str:
    from airflow.configuration import conf

    return str(conf.get("api", "base_url", fallback="") or "")


def _apps() -> list[dict[str, Any]]:
    from starlette.applications import Starlette
    from starlette.routing import BaseRoute, Mount

    settings = _settings()
    routes: list[BaseRoute] = []
    if settings.ui_page:
        from edgeexec.airflow.teams import edge_teams
        from edgeexec.airflow.ui_page import create_page_app  # Redis and Starlette: only where it is served

        routes.append(Mount(PAGE_PATH, create_page_app(settings, _base_url(), edge_teams)))
    if settings.mount_gateway:
        from edgeexec.gateway.app import create_app

        log.info("mounting the edgeexec gateway at %s", URL_PREFIX)
        routes.append(Mount("", create_app(settings)))
    if not routes:
        return []
    return [{"app": Starlette(routes=routes), "url_prefix": URL_PREFIX, "name": "edgeexec"}]


def _views() -> list[dict[str, Any]]:
    if not _settings().ui_page:
        return []
    root = urlsplit(_base_url()).path.rstrip("/")  # Airflow served under a path prefix
    return [{"name": "Edge agents", "href": f"{root}{URL_PREFIX}{PAGE_PATH}/", "url_route": URL_ROUTE,
             "category": "admin", "destination": "nav"}]


class EdgeexecPlugin(AirflowPlugin):  # type: ignore[misc]
    name = "edgeexec"
    fastapi_apps = _apps()
    external_views = _views()
