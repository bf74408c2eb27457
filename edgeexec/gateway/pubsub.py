"""A pub/sub subscription that survives Redis restarts and failovers."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence

import redis.asyncio as aioredis

log = logging.getLogger(__name__)
Handler = Callable[[str, str], Awaitable[None]]


async def listen(client: aioredis.Redis, channels: Sequence[str], handle: Handler,
                 subscribed: asyncio.Event | None = None) -> None:
    """Call ``handle(channel, data)`` for every message, resubscribing with backoff when Redis goes away.

    ``subscribed`` is set once the subscription is live (and again after each resubscription), so
    a caller can take a snapshot knowing that no later change will be missed.
    """
    delay = 0.1
    while True:
        try:
            async with client.pubsub(ignore_subscribe_messages=True) as ps:
                await ps.subscribe(*channels)
                if subscribed is not None:
                    subscribed.set()
                delay = 0.1
                async for message in ps.listen():
                    await _deliver(handle, str(message["channel"]), str(message["data"]))
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("pub/sub on %s lost Redis; resubscribing in %.1f s", ", ".join(channels), delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)


async def _deliver(handle: Handler, channel: str, data: str) -> None:
    """One message; a handler's failure is logged and costs that message only, never the subscription
    (every notice is also recoverable from Redis: heartbeats resend runs and cancels)."""
    try:
        await handle(channel, data)
    except asyncio.CancelledError:
        raise
    except Exception:
        log.exception("handling %r on %s failed; the subscription carries on", data[:80], channel)
