"""``edgeexec token create|list|revoke``."""

from __future__ import annotations

import argparse
import datetime
import sys

import orjson
import redis

from edgeexec.config.lookup import env_lookup, env_team
from edgeexec.config.settings import SECTION, GatewaySettings
from edgeexec.errors import ConfigError
from edgeexec.protocol import ProtocolError, validate_agent_name, validate_queue_name
from edgeexec.store.keys import Keys
from edgeexec.store.redis_url import connect
from edgeexec.tokens import store as token_store
from edgeexec.tokens.model import TokenInfo, parse_duration


def _when(ms: int) -> str:
    return datetime.datetime.fromtimestamp(ms / 1000, datetime.UTC).strftime("%Y-%m-%d %H:%M UTC") if ms else "never"


def _row(t: TokenInfo) -> dict[str, object]:
    return {"id": t.id, "agent": t.agent, "queues": list(t.queues), "admin": t.admin,
            "created": _when(t.created_ms), "expires": _when(t.expires_ms)}


def _create(client: redis.Redis, keys: Keys, args: argparse.Namespace) -> int:
    queues = tuple(q.strip() for q in args.queues.split(",") if q.strip())
    try:
        if not args.admin:
            validate_agent_name(args.agent)
            if not queues:
                raise ConfigError("an agent token needs -q/--queues: the queues this agent may serve")
        for q in queues:
            validate_queue_name(q)
        ttl = parse_duration(args.expires) if args.expires else None
    except (ProtocolError, ValueError) as exc:
        raise ConfigError(str(exc)) from None
    token, info = token_store.create(client, keys, agent=args.agent, queues=queues, admin=args.admin, ttl_s=ttl)
    kind = "admin token" if args.admin else f"token for agent {args.agent!r} (queues: {', '.join(queues)})"
    print(f"created {kind}, id {info.id}, expires {_when(info.expires_ms)}. It is shown only now:",
          file=sys.stderr)
    print(token)
    return 0


def rows(client: redis.Redis, keys: Keys) -> list[dict[str, object]]:
    """Every live token's id and scope; never a secret."""
    return [_row(t) for t in token_store.list_tokens(client, keys)]


def revoke(client: redis.Redis, keys: Keys, tid: str) -> int:
    info = token_store.revoke(client, keys, tid)
    if info is None:
        print(f"edgeexec: no token with id {tid!r} (see `edgeexec token list`)", file=sys.stderr)
        return 1
    print(f"revoked token {info.id} ({'admin' if info.admin else 'agent ' + info.agent})")
    return 0


def create(client: redis.Redis, keys: Keys, args: argparse.Namespace) -> int:
    """``args``: agent, queues (comma-separated), admin, expires (a duration or None)."""
    return _create(client, keys, args)


def run(args: argparse.Namespace) -> int:
    team = env_team(SECTION, args.team)
    settings = GatewaySettings.load(env_lookup(SECTION, team=team), redis_url=args.redis_url,
                                    redis_prefix=args.redis_prefix, team=team)
    client = connect(settings.redis_url, decode_responses=True)
    keys = settings.keys()
    if args.token_command == "create":
        return _create(client, keys, args)
    if args.token_command == "list":
        listed = rows(client, keys)
        if args.json:
            print(orjson.dumps(listed).decode())
        else:
            for r in listed:
                scope = "admin" if r["admin"] else f"agent={r['agent']} queues={','.join(r['queues'])}"  # type: ignore[arg-type]
                print(f"{r['id']}  {scope}  created {r['created']}  expires {r['expires']}")
        return 0
    return revoke(client, keys, args.id)
