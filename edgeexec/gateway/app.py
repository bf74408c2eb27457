"""Starlette application factory for the gateway."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator

import redis.asyncio as aioredis
from prometheus_client import CONTENT_TYPE_LATEST
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.types import ASGIApp, Receive, Scope, Send
from starlette.websockets import WebSocket

from edgeexec.config.settings import GatewaySettings
from edgeexec.gateway import page
from edgeexec.gateway.service import SERVER_SEND, Gateway
from edgeexec.store.redis_url import connect_async, redact

log = logging.getLogger(__name__)
AGENT_PATH = "/ws/agent"
CONTROL_PATH = "/ws/control"


class KeepServerSend:
    """Remembers the ASGI server's own ``send`` in a WebSocket's scope (``SERVER_SEND``): a session
    the gateway gave up on is then aborted at its transport instead of waiting on a peer that
    does not read (see service._abort). Runs first, before any layer wraps ``send``."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":
            scope[SERVER_SEND] = send
        await self.app(scope, receive, send)


def create_app(settings: GatewaySettings, client: aioredis.Redis | None = None) -> Starlette:
    """A gateway app; ``client`` defaults to one built from ``settings.redis_url``."""
    settings.require_secret()
    redis_client = client or connect_async(settings.redis_url, pool_size=settings.redis_pool_size,
                                           decode_responses=True, health_check_interval=30,
                                           socket_timeout=settings.redis_timeout,
                                           socket_connect_timeout=settings.redis_timeout, socket_keepalive=True)
    gateway = Gateway(settings, redis_client)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await gateway.start()
        log.info("gateway %s ready (redis %s, keyspace %s%s)", settings.gateway_id, redact(settings.redis_url),
                 gateway.keys.prefix, f", team {settings.team}" if settings.team else "")
        try:
            yield
        finally:
            await gateway.stop()

    async def agent_ws(ws: WebSocket) -> None:
        await gateway.serve_agent(ws)

    async def control_ws(ws: WebSocket) -> None:
        await gateway.serve_control(ws)

    async def health(request: Request) -> JSONResponse:
        try:
            await redis_client.ping()
        except Exception as exc:  # noqa: BLE001 - any Redis failure means unhealthy
            return JSONResponse({"status": "unhealthy", "redis": str(exc)}, status_code=503)
        return JSONResponse({"status": "ok", "gateway": settings.gateway_id, "agents": len(gateway.sessions)})

    async def dashboard(request: Request) -> Response:
        return page.dashboard(control_path=f"{request.scope.get('root_path', '')}{CONTROL_PATH}", auth="token",
                              framed=False)

    async def metrics(request: Request) -> Response:
        denied = await gateway.auth.may_scrape(request.headers.get("authorization"),
                                          request.client.host if request.client else "")
        if denied is not None:
            return JSONResponse({"error": denied[1]}, status_code=denied[0])
        body = await gateway.metrics.render(redis_client, gateway.keys, len(gateway.sessions))
        return Response(body, media_type=CONTENT_TYPE_LATEST)

    app = Starlette(
        routes=[WebSocketRoute(AGENT_PATH, agent_ws), WebSocketRoute(CONTROL_PATH, control_ws),
                Route("/health", health), Route("/metrics", metrics), Route("/", dashboard),
                Route("/dashboard", dashboard)],
        lifespan=lifespan,
        middleware=[Middleware(KeepServerSend)],
    )
    app.state.gateway = gateway
    return app
