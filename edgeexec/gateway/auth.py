"""Who is calling: every gateway endpoint's authentication, decided before a WebSocket is accepted.

Refusals are plain HTTP responses (401/403/429), so a misconfigured agent backs off instead of
retry-storming an accepted-then-closed socket. Agents and control clients present a token
(``Authorization: Bearer``; browsers, which cannot set headers on a WebSocket, offer it as the
``token.<token>`` subprotocol); /metrics is open unless ``metrics_token`` is set.
"""

from __future__ import annotations

import hmac
import logging
import time

import redis.asyncio as aioredis
from starlette.responses import JSONResponse
from starlette.websockets import WebSocket

from edgeexec.config.settings import GatewaySettings
from edgeexec.gateway.budget import FailureWindow
from edgeexec.gateway.metrics import GatewayMetrics
from edgeexec.store.keys import Keys
from edgeexec.tokens import store as token_store
from edgeexec.tokens.model import SHARED_SECRET, TokenInfo

log = logging.getLogger(__name__)

Denial = tuple[int, str]
"""(HTTP status, explanation for the client)."""
TOKEN_SUBPROTOCOL = "token."
ADMIN_REQUIRED: Denial = 403, "an admin token is required here: create one with `edgeexec token create --admin`"


def bearer(header: str | None) -> str | Denial:
    """The token in an Authorization header, or (HTTP status, explanation)."""
    if not header:
        return 401, "missing Authorization header: start the agent with --token or AIRFLOW__EDGEEXEC__TOKEN"
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        return 401, "Authorization header must be 'Bearer <token>'"
    return value.strip()


def subprotocol_token(ws: WebSocket) -> str | None:
    """The token a browser offered as the subprotocol ``token.<token>``, as an Authorization value
    (never a query string, which proxies log)."""
    for proto in ws.scope.get("subprotocols", []):
        if proto.startswith(TOKEN_SUBPROTOCOL):
            return f"Bearer {proto[len(TOKEN_SUBPROTOCOL):]}"
    return None


class Auth:
    def __init__(self, settings: GatewaySettings, client: aioredis.Redis, keys: Keys, metrics: GatewayMetrics) -> None:
        self.settings, self.client, self.keys, self.metrics = settings, client, keys, metrics
        self.failures = FailureWindow(settings.login_failures_per_minute)

    async def authenticate(self, header: str | None, peer: str = "") -> TokenInfo | Denial:
        """Refused logins are counted per address: past ``login_failures_per_minute`` further refusals
        are a terse 429 (and no longer logged one by one). A valid token is always admitted, so a
        bad client behind the same NAT or load balancer cannot lock a fleet out; guessing is not
        the threat (tokens hold 256 random bits), load and log floods are.
        """
        who = await self._identify(header)
        if isinstance(who, tuple):
            now = time.monotonic()
            if self.failures.blocked(peer, now):
                return 429, "too many refused logins from this address; wait a minute and check the token"
            self.failures.record(peer, now)
        return who

    async def admin(self, ws: WebSocket) -> TokenInfo | Denial:
        """An admin client of the control endpoint (header or browser subprotocol)."""
        who = await self.authenticate(ws.headers.get("authorization") or subprotocol_token(ws), peer(ws))
        if not isinstance(who, tuple) and not who.admin:
            return ADMIN_REQUIRED
        return who

    async def _identify(self, header: str | None) -> TokenInfo | Denial:
        token = bearer(header)
        if isinstance(token, tuple):
            return token
        if self.settings.allow_shared_secret and hmac.compare_digest(token.encode(), self.settings.shared_secret.encode()):
            return SHARED_SECRET
        info = await token_store.lookup(self.client, self.keys, token)
        if info is None:
            return 403, "token refused: unknown, expired or revoked. Ask an operator for a new one (edgeexec token create)"
        return info

    async def may_scrape(self, header: str | None, peer: str) -> Denial | None:
        """/metrics is open unless ``metrics_token`` is set; then that token or an admin token."""
        if not self.settings.metrics_token:
            return None
        token = bearer(header)
        if isinstance(token, str) and hmac.compare_digest(token.encode(), self.settings.metrics_token.encode()):
            return None
        who = await self.authenticate(header, peer)
        if isinstance(who, tuple):
            return who
        return None if who.admin else (403, "/metrics needs the metrics token or an admin token")

    async def deny(self, ws: WebSocket, denial: Denial) -> None:
        status, message = denial
        self.metrics.auth_failures.labels(status=str(status)).inc()
        if status != 429:  # past the limit, refusals are counted, not logged one by one
            log.warning("refused connection from %s to %s: %s", ws.client, ws.url.path, message)
        await refuse(ws, denial)


async def refuse(ws: WebSocket, denial: Denial) -> None:
    """Answer a WebSocket handshake with an HTTP refusal that says why, before it is accepted."""
    status, message = denial
    if "websocket.http.response" in ws.scope.get("extensions", {}):
        await ws.send_denial_response(JSONResponse({"error": message}, status_code=status))
    else:  # a server without the denial extension answers a close-before-accept with HTTP 403
        await ws.close(code=1008, reason=message[:120])


def peer(ws: WebSocket) -> str:
    return ws.client.host if ws.client else ""
