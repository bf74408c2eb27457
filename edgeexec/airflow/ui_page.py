"""The fleet page inside Airflow's own UI (Admin → Edge agents), signed in as an Airflow user.

The plugin (plugin.py) mounts this app in Airflow's API server at ``/edgeexec/ui`` and registers
it as an external view, which Airflow's UI frames under its own navigation. The page is the
gateway's dashboard (one page, two ways in); its live control socket here authenticates the
Airflow session the browser already holds (the ``_token`` cookie, or ``Authorization: Bearer``
for scripts) through Airflow's auth manager, so there is no token to paste.

Permissions are Airflow's, on the resource agents are closest to: the execution slots Airflow
calls pools. Reading pools lets a user watch the fleet; editing pools lets them command it
(maintenance, drain, shutdown, queues, concurrency). With SimpleAuthManager that is Viewer and
Op; with the FAB auth manager "can read on Pools" and "can edit on Pools". A session is asked
again every ``token_recheck_interval`` seconds (a logout revokes the token; a role can change) and ends when the
Airflow token expires; the page then signs in again from the browser's refreshed cookie.
"""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import urlsplit

import jwt
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket

from edgeexec.config.settings import GatewaySettings
from edgeexec.gateway.auth import Denial
from edgeexec.gateway.control import ControlHub
from edgeexec.gateway.operators import Operator
from edgeexec.gateway.page import dashboard
from edgeexec.gateway.store import GatewayStore
from edgeexec.store.keys import Keys
from edgeexec.store.redis_url import connect_async

log = logging.getLogger(__name__)
PAGE_PATH = "/ui"
"""Under the plugin's ``/edgeexec`` prefix."""
URL_ROUTE = "edgeexec"
"""Airflow's UI shows the page at ``/plugin/<URL_ROUTE>``."""
COOKIE = "_token"  # Airflow's COOKIE_NAME_JWT_TOKEN: the e2e page tests sign in through it
READ_REFUSED = ("your Airflow user may not read pools, which watching the edge agents needs: "
                "ask an Airflow admin for that permission")
MANAGE_REFUSED = ("read-only: your Airflow user may read but not edit pools, which commanding edge agents "
                  "needs: ask an Airflow admin for that permission")


def _auth_manager() -> Any:
    from airflow.api_fastapi.app import get_auth_manager

    return get_auth_manager()


def permissions(user: Any) -> tuple[bool, bool]:
    """(may watch, may command) for an Airflow user: read and edit on pools."""
    manager = _auth_manager()
    return (bool(manager.is_authorized_pool(method="GET", user=user)),
            bool(manager.is_authorized_pool(method="PUT", user=user)))


def credential(ws: WebSocket) -> tuple[str, bool]:
    """(the Airflow token, whether it came from the cookie); '' when there is none."""
    scheme, _, value = (ws.headers.get("authorization") or "").partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip(), False
    return ws.cookies.get(COOKIE, ""), True


def same_origin(ws: WebSocket, base_url: str) -> bool:
    """A browser always says where a page that opens a WebSocket came from. The cookie rides
    along to any site's socket, so a cookie-authenticated socket from another origin (cross-site
    WebSocket hijacking) is refused: the Origin must be this host, or Airflow's ``base_url``."""
    origin = ws.headers.get("origin", "")
    if not origin:
        return False
    host = ws.headers.get("host", "")
    base = urlsplit(base_url)
    return urlsplit(origin).netloc == host or (bool(base.netloc) and origin == f"{base.scheme}://{base.netloc}")


class AirflowUsers:
    """Operators as Airflow's auth manager knows them; their sessions are asked again every
    ``recheck_interval`` seconds (``[edgeexec] token_recheck_interval``)."""

    def __init__(self, base_url: str, recheck_interval: float) -> None:
        self.base_url = base_url
        self.recheck_interval: float | None = recheck_interval

    async def identify(self, ws: WebSocket) -> Operator | Denial:
        token, from_cookie = credential(ws)
        if not token:
            return 401, "not signed in to Airflow: open this page from Airflow's UI (Admin → Edge agents)"
        if from_cookie and not same_origin(ws, self.base_url):
            return 403, "a signed-in browser session may only open this socket from Airflow's own pages"
        return await self._operator(token)

    async def _operator(self, token: str) -> Operator | Denial:
        try:
            user = await _auth_manager().get_user_from_token(token)
        except Exception as exc:  # noqa: BLE001 - any refusal of the token: expired, revoked, forged
            return 401, f"Airflow refused the session ({type(exc).__name__}): sign in to Airflow again"
        may_read, may_manage = permissions(user)
        if not may_read:
            return 403, READ_REFUSED
        exp = jwt.decode(token, options={"verify_signature": False}).get("exp")
        name = str(user.get_name())
        return Operator(id=f"airflow:{user.get_id()}", name=f"Airflow user {name}",
                        read_only="" if may_manage else MANAGE_REFUSED,
                        expires_at=float(exp) if isinstance(exp, int | float) else None)

    async def deny(self, ws: WebSocket, denial: Denial) -> None:
        status, message = denial
        log.warning("refused the edge agents page's socket from %s: %s", ws.client, message)
        if "websocket.http.response" in ws.scope.get("extensions", {}):
            await ws.send_denial_response(JSONResponse({"error": message}, status_code=status))
        else:
            await ws.close(code=1008, reason=message[:120])

    async def recheck(self, ws: WebSocket, operator: Operator) -> Operator | str:
        token, _ = credential(ws)
        now = await self._operator(token)
        return now[1] if isinstance(now, tuple) else now


def create_page_app(settings: GatewaySettings, base_url: str) -> Starlette:
    """The page and its socket; Redis is reached lazily (a mounted app's lifespan never runs)."""
    client = connect_async(settings.redis_url, pool_size=8, decode_responses=True, health_check_interval=30,
                           socket_timeout=settings.redis_timeout, socket_connect_timeout=settings.redis_timeout)
    store = GatewayStore(client, Keys(settings.redis_prefix), liveness_s=settings.liveness,
                         job_ttl_s=settings.job_ttl)
    hub = ControlHub(store, AirflowUsers(base_url, settings.token_recheck_interval), send_timeout=settings.send_timeout)

    async def page(request: Request) -> Response:
        return dashboard(control_path=f"{request.scope.get('root_path', '')}/ws", auth="airflow", framed=True)

    async def control(ws: WebSocket) -> None:
        await hub.serve(ws)

    app = Starlette(routes=[Route("/", page), WebSocketRoute("/ws", control)])
    app.state.hub = hub
    return app
