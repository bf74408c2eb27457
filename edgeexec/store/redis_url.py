"""Redis clients from one URL, including Sentinel-managed masters.

Every component (scheduler, gateways, CLIs) builds its client here, so a deployment switches from
one Redis to a Sentinel-managed pair by changing ``redis_url`` alone:

    redis://[[user]:password@]host:port/db                 one server (redis-py's own URL)
    rediss://...                                            the same over TLS
    redis+sentinel://[[user]:password@]h1:26379,h2:26379/service_name[/db][?sentinel_password=...]

With Sentinel, the clients ask the sentinels for the current master on every new connection,
so after a failover the next command (the executor retries, gateways reconnect) reaches the new
master without a restart. The userinfo part authenticates to the master; ``sentinel_password``
to the sentinels when they require it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import redis
import redis.asyncio as aioredis
from redis.asyncio.sentinel import Sentinel as AsyncSentinel
from redis.sentinel import Sentinel

from edgeexec.errors import ConfigError

SENTINEL_SCHEME = "redis+sentinel"


@dataclass(frozen=True)
class SentinelURL:
    hosts: tuple[tuple[str, int], ...]
    service: str
    db: int = 0
    username: str | None = None
    password: str | None = None
    sentinel_password: str | None = None


def _host_port(item: str, url: str) -> tuple[str, int]:
    host, _, port = item.rpartition(":") if ":" in item else (item, "", "26379")
    if not host or not port.isdigit():
        raise ConfigError(f"redis_url {redact(url)!r}: {item!r} is not host:port")
    return host.strip("[]"), int(port)


def parse_sentinel(url: str) -> SentinelURL:
    """Parse ``redis+sentinel://`` URLs; the error says which part is wrong."""
    parts = urlsplit(url)
    if parts.scheme != SENTINEL_SCHEME:
        raise ConfigError(f"redis_url {redact(url)!r} is not a {SENTINEL_SCHEME}:// URL")
    userinfo, _, hostlist = parts.netloc.rpartition("@")
    username, _, password = userinfo.partition(":")
    path = [p for p in parts.path.split("/") if p]
    if not hostlist or not path:
        raise ConfigError(f"redis_url {redact(url)!r}: expected {SENTINEL_SCHEME}://host:port[,host:port]/service[/db]")
    if len(path) > 2 or (len(path) == 2 and not path[1].isdigit()):
        raise ConfigError(f"redis_url {redact(url)!r}: the path is /service_name[/db], with db a number")
    query = parse_qs(parts.query)
    return SentinelURL(
        hosts=tuple(_host_port(h, url) for h in hostlist.split(",") if h),
        service=unquote(path[0]),
        db=int(path[1]) if len(path) == 2 else 0,
        username=unquote(username) or None,
        password=unquote(password) or None,
        sentinel_password=query.get("sentinel_password", [None])[0],
    )


def redact(url: str) -> str:
    """The URL without credentials, for logs and errors."""
    scheme, sep, rest = url.partition("://")
    if "@" in rest:
        rest = "***@" + rest.rpartition("@")[2]
    return scheme + sep + rest.partition("?")[0]


def _sentinel_kwargs(u: SentinelURL) -> dict[str, Any]:
    return {"password": u.sentinel_password} if u.sentinel_password else {}


def connect(url: str, **kwargs: Any) -> redis.Redis:
    """A blocking client (scheduler, CLIs); ``kwargs`` go to every connection (timeouts...)."""
    if not url.startswith(SENTINEL_SCHEME + "://"):
        return redis.Redis.from_url(url, **kwargs)
    u = parse_sentinel(url)
    sentinel = Sentinel(  # type: ignore[no-untyped-call]
        list(u.hosts), sentinel_kwargs=_sentinel_kwargs(u), socket_timeout=kwargs.get("socket_timeout"))
    client: redis.Redis = sentinel.master_for(  # type: ignore[no-untyped-call]
       u.service, db=u.db, username=u.username, password=u.password, **kwargs)
    return client


def connect_async(url: str, pool_size: int = 64, **kwargs: Any) -> aioredis.Redis:
    """An asyncio client (gateways) with at most ``pool_size`` connections.

    A burst of agents (thousands reconnecting after a gateway restart) must queue for a
    connection, not fail: a plain URL gets a blocking pool (a call waits up to 30 s for a free
    connection). redis-py's Sentinel pool cannot block, so it gets ``pool_size`` x 16 instead.
    """
    if not url.startswith(SENTINEL_SCHEME + "://"):
        pool = aioredis.BlockingConnectionPool.from_url(url, max_connections=pool_size, timeout=30, **kwargs)
        return aioredis.Redis(connection_pool=pool)
    u = parse_sentinel(url)
    sentinel = AsyncSentinel(list(u.hosts),  # type: ignore[no-untyped-call]
                             sentinel_kwargs=_sentinel_kwargs(u),
                             socket_timeout=kwargs.get("socket_timeout"))
    client: aioredis.Redis = sentinel.master_for(u.service, db=u.db, username=u.username, password=u.password,
                                                  max_connections=pool_size * 16, **kwargs)
    return client
