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

With ``[core] multi_team``, every team's fleet is its own (its keyspace, its overrides of
``[edgeexec]``): a socket watches one team's (``?team=``), which the auth manager must let the
user see, and commands reach that team's agents only.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import jwt
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket

from edgeexec.config.lookup import airflow_lookup
from edgeexec.config.settings import SECTION, GatewaySettings
from edgeexec.gateway.auth import Denial, refuse
from edgeexec.gateway.control import ControlHub
from edgeexec.gateway.operators import Operator
from edgeexec.gateway.page import dashboard
from edgeexec.gateway.store import GatewayStore
from edgeexec.store.redis_url import connect_async

log = logging.getLogger(__name__)
COOKIE = "_token"  # Airflow's COOKIE_NAME_JWT_TOKEN: the e2e page tests sign in through it
READ_REFUSED = ("your Airflow user may not read pools, which watching the edge agents needs: "
                "ask an Airflow admin for that permission")
MANAGE_REFUSED = ("read-only: your Airflow user may read but not edit pools, which commanding edge agents "
                  "needs: ask an Airflow admin for that permission")


def _auth_manager() -> Any:
    from airflow.api_fastapi.app import get_auth_manager

    return get_auth_manager()


def permissions(user: Any, team: str) -> tuple[bool, bool]:
    """(may watch, may command) a team's fleet ('' = the team-less one): read and edit on the
    team's pools, as the auth manager decides for that team."""
    from airflow.api_fastapi.auth.managers.models.resource_details import PoolDetails

    manager = _auth_manager()
    details = PoolDetails(team_name=team or None)
    return (bool(manager.is_authorized_pool(method="GET", user=user, details=details)),
            bool(manager.is_authorized_pool(method="PUT", user=user, details=details)))


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
    ``recheck_interval`` seconds (``[edgeexec] token_recheck_interval``). ``teams`` lists the
    fleets there are ('' = the team-less one); which of them a user may watch, the auth manager says."""

    def __init__(self, base_url: str, recheck_interval: float, teams: Callable[[], list[str]]) -> None:
        self.base_url, self.teams = base_url, teams
        self.recheck_interval: float | None = recheck_interval

    async def identify(self, ws: WebSocket) -> Operator | Denial:
        """The operator, for the team the socket asks for (``?team=``; default: the first fleet
        they may watch)."""
        token, from_cookie = credential(ws)
        if not token:
            return 401, "not signed in to Airflow: open this page from Airflow's UI (Admin → Edge agents)"
        if from_cookie and not same_origin(ws, self.base_url):
            return 403, "a signed-in browser session may only open this socket from Airflow's own pages"
        return await self._operator(token, ws.query_params.get("team"))

    async def _user(self, token: str) -> Any:
        try:
            return await _auth_manager().get_user_from_token(token)
        except Exception as exc:  # noqa: BLE001 - any refusal of the token: expired, revoked, forged
            return 401, f"Airflow refused the session ({type(exc).__name__}): sign in to Airflow again"

    async def _operator(self, token: str, team: str | None) -> Operator | Denial:
        user = await self._user(token)
        if isinstance(user, tuple):
            return user
        # the auth manager may ask its database: off the event loop
        allowed = await asyncio.to_thread(lambda: {t: permissions(user, t) for t in self.teams()})
        # a team's own fleet first: the default for a user of a team
        readable = tuple(sorted((t for t, (read, _) in allowed.items() if read), key=lambda t: (not t, t)))
        team = readable[0] if team is None and readable else team or ""
        if team not in readable:
            named = f" (of team {team[:60]!r}; yours: {', '.join(t or '(no team)' for t in readable) or 'none'})"
            return 403, READ_REFUSED + (named if team else "")
        return self._as_operator(user, token, team, readable, manage=allowed[team][1])

    @staticmethod
    def _as_operator(user: Any, token: str, team: str, readable: tuple[str, ...], *, manage: bool) -> Operator:
        exp = jwt.decode(token, options={"verify_signature": False}).get("exp")
        return Operator(id=f"airflow:{user.get_id()}", name=f"Airflow user {user.get_name()}",
                        read_only="" if manage else MANAGE_REFUSED,
                        expires_at=float(exp) if isinstance(exp, int | float) else None, team=team, teams=readable)

    async def deny(self, ws: WebSocket, denial: Denial) -> None:
        log.warning("refused the edge agents page's socket from %s: %s", ws.client, denial[1])
        await refuse(ws, denial)

    async def recheck(self, ws: WebSocket, operator: Operator) -> Operator | str:
        """The session's own team only: is the token still good (not revoked at logout), and may
        the user still watch, and command, that fleet."""
        token, _ = credential(ws)
        user = await self._user(token)
        if isinstance(user, tuple):
            return str(user[1])
        read, manage = await asyncio.to_thread(permissions, user, operator.team)
        if not read:
            return READ_REFUSED
        return self._as_operator(user, token, operator.team, operator.teams, manage=manage)


def create_page_app(settings: GatewaySettings, base_url: str, teams: Callable[[], list[str]]) -> Starlette:
    """The page and its socket, with one control hub per team's fleet (each on the team's own
    settings and keyspace), made on first use: Redis is reached lazily (a mounted app's lifespan
    never runs). ``settings`` are the team-less ones; ``teams()`` the fleets edgeexec serves."""
    users = AirflowUsers(base_url, settings.token_recheck_interval, teams)
    hubs: dict[str, ControlHub] = {}

    def hub_for(team: str) -> ControlHub:
        if team not in hubs:
            s = settings if not team else GatewaySettings.load(airflow_lookup(SECTION, team), team=team)
            client = connect_async(s.redis_url, pool_size=8, decode_responses=True, health_check_interval=30,
                                   socket_timeout=s.redis_timeout, socket_connect_timeout=s.redis_timeout)
            store = GatewayStore(client, s.keys(), liveness_s=s.liveness, job_ttl_s=s.job_ttl)
            hubs[team] = ControlHub(store, users, send_timeout=s.send_timeout)
        return hubs[team]

    async def page(request: Request) -> Response:
        return dashboard(control_path=f"{request.scope.get('root_path', '')}/ws", auth="airflow", framed=True)

    async def control(ws: WebSocket) -> None:
        who = await users.identify(ws)
        if isinstance(who, tuple):
            await users.deny(ws, who)
            return
        await hub_for(who.team).serve(ws, who)

    app = Starlette(routes=[Route("/", page), WebSocketRoute("/ws", control)])
    app.state.hubs = hubs
    return app
