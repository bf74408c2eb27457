"""Run the gateway under uvicorn with the settings that matter for many idle WebSockets."""

from __future__ import annotations

import uvicorn

from edgeexec.config.settings import GatewaySettings
from edgeexec.gateway.app import create_app


def uvicorn_config(settings: GatewaySettings, **extra: object) -> uvicorn.Config:
    return uvicorn.Config(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        ws="websockets-sansio",  # denial responses before accept (401/403/503); lighter than "websockets"
        ws_max_size=settings.max_frame_bytes,
        ws_per_message_deflate=False,  # frames are small; zlib contexts cost ~100 KB per agent
        # agents ping with every heartbeat, and the gateway itself ends a session silent for its
        # liveness window (4411), in a mounted gateway too; uvicorn's own ping would also end
        # sessions whose frames merely queue up behind a busy app (it pauses reading, pongs included)
        ws_ping_interval=None,
        lifespan="on",
        log_level="info",
        access_log=False,
        ssl_certfile=settings.ssl_certfile or None,
        ssl_keyfile=settings.ssl_keyfile or None,
        **extra,  # type: ignore[arg-type]
    )


def serve(settings: GatewaySettings) -> None:
    uvicorn.Server(uvicorn_config(settings)).run()
