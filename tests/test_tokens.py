"""Per-agent and admin tokens: the CLI, a tokens-only gateway, revocation, and no secret in logs."""

from __future__ import annotations

import asyncio
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
import redis
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from edgeexec import protocol as p
from edgeexec.localstack.processes import BIN
from edgeexec.store.keys import Keys
from edgeexec.tokens import model as tokens
from tests.servers import start_gateway
from tests.test_gateway import Gateway, _closed_with, _hello

# ---------------------------------------------------------------------------- pure


def test_durations() -> None:
    """--expires accepts s/m/h/d/w and explains anything else."""
    assert [tokens.parse_duration(t) for t in ("90s", "15m", "12h", "30d", "2w")] == [90, 900, 43200, 2592000, 1209600]
    with pytest.raises(ValueError, match=r"e\.g\. 30d"):
        tokens.parse_duration("forever")


def test_token_format_and_digest() -> None:
    """Tokens carry a public id; only a digest is stored and it matches in constant time."""
    tid, token = tokens.generate()
    assert tokens.token_id(token) == tid and tokens.token_id("eex_nothex_x") is None
    assert tokens.matches(token, tokens.digest(token)) and not tokens.matches(token + "x", tokens.digest(token))


# ---------------------------------------------------------------------------- real gateway + CLI


@pytest.fixture(scope="module")
def tgw(redis_server: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    """A production-style gateway: tokens only, no shared secret."""
    keys = Keys(f"tk{uuid.uuid4().hex[:8]}")
    log = Path(tmp_path_factory.mktemp("tgw")) / "gateway.log"
    port, proc = start_gateway(redis_server.url, keys.prefix, log, "--log-level", "debug")
    yield Gateway(port, keys, proc)
    proc.stop()
    # after every test of this module, in whatever order they ran (debug logging on): no secret logged
    text = log.read_text()
    assert "eex_" not in text and "Bearer" not in text, "a token secret in the gateway's log"


def cli(gw: Gateway, redis_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(BIN / "edgeexec"), "token", *args, "--redis-url", redis_url, "--redis-prefix",
                           gw.keys.prefix], capture_output=True, text=True, timeout=60)


def _token(gw: Gateway, redis_url: str, *args: str) -> str:
    out = cli(gw, redis_url, "create", *args)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


def _connect(gw: Gateway, token: str) -> Any:
    return connect(gw.url, additional_headers={"Authorization": f"Bearer {token}"})


async def test_agent_token_admits_its_agent_on_its_queues(tgw: Gateway, redis_server: Any) -> None:
    """A token created for an agent and queues lets exactly that agent connect."""
    name = f"site-{uuid.uuid4().hex[:6]}"
    token = _token(tgw, redis_server.url, "--agent", name, "-q", "a,b")
    async with _connect(tgw, token) as ws:
        await _hello(ws, name, queues=("a",))


@pytest.mark.parametrize(
    ("hello_name", "queues", "needle"),
    [("someone-else", ("a",), "belongs to agent"), (None, ("a", "secret-queue"), "not allowed by this token")],
)
async def test_token_scope_is_enforced(tgw: Gateway, redis_server: Any, hello_name: str | None,
                                       queues: tuple[str, ...], needle: str) -> None:
    """Another agent's name, or a queue the token does not allow, is refused with 4403 and a reason."""
    name = f"site-{uuid.uuid4().hex[:6]}"
    token = _token(tgw, redis_server.url, "--agent", name, "-q", "a")
    async with _connect(tgw, token) as ws:
        await ws.send(p.encode(p.Hello(name=hello_name or name, instance="i", queues=queues, concurrency=1)).decode())
        err = p.decode(await asyncio.wait_for(ws.recv(), 10))
        assert isinstance(err, p.Error) and needle in err.message
        assert await _closed_with(ws) == p.CloseCode.FORBIDDEN


async def test_admin_token_cannot_be_used_by_an_agent(tgw: Gateway, redis_server: Any) -> None:
    """Admin tokens are for control clients."""
    token = _token(tgw, redis_server.url, "--admin")
    async with _connect(tgw, token) as ws:
        await ws.send(p.encode(p.Hello(name="x", instance="i", queues=("a",), concurrency=1)).decode())
        err = p.decode(await asyncio.wait_for(ws.recv(), 10))
        assert isinstance(err, p.Error) and "control clients" in err.message


@pytest.mark.parametrize("kind", ["garbage", "wellformed-unknown", "expired", "shared-secret"])
async def test_bad_tokens_are_refused_before_the_socket_opens(tgw: Gateway, redis_server: Any,
                                                              rclient: redis.Redis, kind: str) -> None:
    """Unknown, expired and (on a tokens-only gateway) shared-secret credentials get HTTP 403."""
    token = {"garbage": "not-a-token", "shared-secret": "any-shared-secret",
             "wellformed-unknown": tokens.generate()[1]}.get(kind, "")
    if kind == "expired":
        token = _token(tgw, redis_server.url, "--agent", "exp", "-q", "a", "--expires", "1h")
        rclient.hset(f"{tgw.keys.prefix}:token:{tokens.token_id(token)}", "expires", 1)
    with pytest.raises(InvalidStatus) as err:
        async with _connect(tgw, token):
            pass
    assert err.value.response.status_code == 403
    assert "unknown, expired or revoked" in orjson.loads(err.value.response.body or b"{}")["error"]


async def test_revoking_a_token_disconnects_the_live_agent(tgw: Gateway, redis_server: Any) -> None:
    """`edgeexec token revoke ID` drops the agent's session at once (4403) and it cannot return."""
    name = f"site-{uuid.uuid4().hex[:6]}"
    token = _token(tgw, redis_server.url, "--agent", name, "-q", "a")
    async with _connect(tgw, token) as ws:
        await _hello(ws, name, queues=("a",))
        listed = orjson.loads(cli(tgw, redis_server.url, "list", "--json").stdout)
        tid = next(t["id"] for t in listed if t["agent"] == name)
        assert cli(tgw, redis_server.url, "revoke", tid).returncode == 0
        assert await _closed_with(ws) == p.CloseCode.FORBIDDEN
    with pytest.raises(InvalidStatus):
        async with _connect(tgw, token):
            pass
    assert cli(tgw, redis_server.url, "revoke", tid).returncode == 1


def test_list_never_shows_secrets_and_create_validates(tgw: Gateway, redis_server: Any) -> None:
    """Listing shows ids and scopes only; a token without queues or with a bad name is refused."""
    token = _token(tgw, redis_server.url, "--agent", "lister", "-q", "a")
    listing = cli(tgw, redis_server.url, "list").stdout
    assert "lister" in listing and token not in listing and token.split("_")[-1] not in listing
    bad = cli(tgw, redis_server.url, "create", "--agent", "no queues")
    assert bad.returncode == 2 and "agent name" in bad.stderr


@pytest.mark.slow  # seconds of load by design; `make fast` leaves it out
def test_a_created_token_is_always_listed_while_others_come_and_go(redis_server: Any) -> None:
    """Creating, listing, expiring and revoking tokens concurrently (CLIs on several hosts): a
    token is in every listing taken after its creation returned and before its revocation."""
    import threading

    from edgeexec.tokens import store as token_store

    keys = Keys(f"tr{uuid.uuid4().hex[:8]}")
    client = redis.Redis.from_url(redis_server.url, decode_responses=True)
    stop = threading.Event()
    errors: list[str] = []

    def churn() -> None:
        c = redis.Redis.from_url(redis_server.url, decode_responses=True)
        while not stop.is_set():
            _, info = token_store.create(c, keys, agent="churn", queues=("q",), admin=False, ttl_s=1)
            token_store.list_tokens(c, keys)
            token_store.revoke(c, keys, info.id)
        c.close()

    def check() -> None:
        c = redis.Redis.from_url(redis_server.url, decode_responses=True)
        for i in range(150):
            _, info = token_store.create(c, keys, agent=f"kept-{i}", queues=("q",), admin=False, ttl_s=None)
            if info.id not in {t.id for t in token_store.list_tokens(c, keys)}:
                errors.append(info.id)
        c.close()

    workers = [threading.Thread(target=churn) for _ in range(3)]
    for w in workers:
        w.start()
    check()
    stop.set()
    for w in workers:
        w.join()
    assert not errors, f"{len(errors)} freshly created token(s) missing from the listing"
    assert len([t for t in token_store.list_tokens(client, keys) if t.agent.startswith("kept-")]) == 150
    client.close()
