"""Tokens in Redis: ``{p}:token:{id}`` hashes (digest, agent, queues, admin, created, expires),
the ``{p}:tokens`` id set, and ``{p}:revoked``, the pub/sub channel gateways listen on to drop a
revoked token's live sessions within a second.
"""

from __future__ import annotations

from typing import Any

import orjson
import redis
import redis.asyncio as aioredis

from edgeexec.store.clock import now_ms
from edgeexec.store.keys import Keys
from edgeexec.tokens.model import TokenInfo, digest, generate, matches, token_id


def _key(keys: Keys, tid: str) -> str:
    return f"{keys.prefix}:token:{tid}"


def _ids(keys: Keys) -> str:
    return f"{keys.prefix}:tokens"


def revoked_channel(keys: Keys) -> str:
    return f"{keys.prefix}:revoked"


def _info(tid: str, h: dict[str, Any]) -> TokenInfo:
    return TokenInfo(id=tid, agent=h.get("agent", ""), queues=tuple(orjson.loads(h.get("queues", "[]"))),
                     admin=h.get("admin") == "1", created_ms=int(h.get("created", 0)),
                     expires_ms=int(h.get("expires", 0)))


def create(client: redis.Redis, keys: Keys, *, agent: str, queues: tuple[str, ...], admin: bool,
           ttl_s: int | None) -> tuple[str, TokenInfo]:
    tid, token = generate()
    created = now_ms()
    expires = created + ttl_s * 1000 if ttl_s else 0
    pipe = client.pipeline()
    pipe.hset(_key(keys, tid), mapping={"digest": digest(token), "agent": agent, "queues": orjson.dumps(list(queues)),
                                        "admin": "1" if admin else "0", "created": created, "expires": expires})
    if expires:
        pipe.pexpireat(_key(keys, tid), expires)
    pipe.sadd(_ids(keys), tid)
    pipe.execute()
    return token, TokenInfo(tid, agent, queues, admin, created, expires)


def list_tokens(client: redis.Redis, keys: Keys) -> list[TokenInfo]:
    out = []
    ids: Any = client.smembers(_ids(keys))
    for tid in sorted(ids):
        h: Any = client.hgetall(_key(keys, tid))
        if h:
            out.append(_info(tid, h))
        else:
            client.srem(_ids(keys), tid)  # expired: the hash went with its TTL
    return out


def revoke(client: redis.Redis, keys: Keys, tid: str) -> TokenInfo | None:
    h: Any = client.hgetall(_key(keys, tid))
    if not h:
        return None
    info = _info(tid, h)
    pipe = client.pipeline()
    pipe.delete(_key(keys, tid))
    pipe.srem(_ids(keys), tid)
    pipe.publish(revoked_channel(keys), tid)
    pipe.execute()
    return info


async def lookup(client: aioredis.Redis, keys: Keys, token: str) -> TokenInfo | None:
    """The token's grants, or None if it is unknown, revoked, expired or does not match."""
    tid = token_id(token)
    if tid is None:
        return None
    h: Any = await client.hgetall(_key(keys, tid))
    if not h or not matches(token, h.get("digest", "")):
        return None
    info = _info(tid, h)
    return None if info.expired(now_ms()) else info


async def dead(client: aioredis.Redis, keys: Keys, tids: set[str]) -> set[str]:
    """Which of ``tids`` are revoked (gone) or expired, by Redis' clock."""
    ordered = sorted(tids)
    pipe = client.pipeline(transaction=False)
    pipe.time()
    for tid in ordered:
        pipe.hget(_key(keys, tid), "expires")
    now, *expires = await pipe.execute()
    now_ms_redis = int(now[0]) * 1000 + int(now[1]) // 1000
    return {tid for tid, exp in zip(ordered, expires, strict=True)
            if exp is None or (int(exp) and int(exp) <= now_ms_redis)}
