"""Raw-socket fuzzing of a live gateway while a well-behaved agent keeps receiving and finishing jobs.

Bounded in count and time: random bytes instead of an HTTP upgrade, truncated and oversized
WebSocket frames after a valid handshake, random frames after hello, slow handshakes, and a
flood of half-open connections. The gateway must stay up, keep its memory bounded, and the
healthy agent must finish every job submitted meanwhile. EDGEEXEC_FUZZ_ROUNDS raises the size.
"""

from __future__ import annotations

import asyncio
import base64
import os
import random
import struct
import uuid
from typing import Any

import psutil
import pytest

from edgeexec import protocol as p
from edgeexec.airflow.redis_dispatcher import RedisDispatcher
from tests.test_gateway import SECRET, Gateway, _connect, _hello, _spec, dispatcher, gateway  # noqa: F401 - the same live gateway fixtures

ROUNDS = int(os.environ.get("EDGEEXEC_FUZZ_ROUNDS", "60"))
FLOOD = 200


def _frame(payload: bytes, opcode: int = 1, length: int | None = None, fin: bool = True) -> bytes:
    """A masked client frame; ``length`` may lie about the payload size."""
    n = len(payload) if length is None else length
    head = bytes([(0x80 if fin else 0) | opcode])
    if n < 126:
        head += bytes([0x80 | n])
    elif n < 65536:
        head += bytes([0x80 | 126]) + struct.pack("!H", n)
    else:
        head += bytes([0x80 | 127]) + struct.pack("!Q", n)
    mask = os.urandom(4)
    return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


def _upgrade(port: int) -> bytes:
    key = base64.b64encode(os.urandom(16)).decode()
    return (f"GET /ws/agent HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\nAuthorization: Bearer {SECRET}\r\n\r\n").encode()


def _hello_json(name: str) -> bytes:
    return p.encode(p.Hello(name=name, instance=uuid.uuid4().hex, queues=("fuzz-void",), concurrency=1))


async def _attack(port: int, rng: random.Random) -> str:
    """One hostile connection; returns which kind, for the tally."""
    kind = rng.choice(["bytes", "truncated", "huge", "garbage-after-hello", "slow", "bad-json", "binary-junk"])
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), 5)
    except OSError:
        return "refused"
    try:
        if kind == "bytes":
            writer.write(os.urandom(rng.randint(1, 4096)))
        elif kind == "slow":
            for b in _upgrade(port)[:40]:
                writer.write(bytes([b]))
                await writer.drain()
                await asyncio.sleep(0.02)
        else:
            writer.write(_upgrade(port))
            await writer.drain()
            await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
            if kind == "truncated":
                writer.write(_frame(b'{"type":"hello"', length=5000)[:30])
            elif kind == "huge":
                writer.write(_frame(b"x" * 16, length=2**40))
            elif kind == "garbage-after-hello":
                writer.write(_frame(_hello_json("fuzz-" + uuid.uuid4().hex[:8])))
                writer.write(_frame(os.urandom(rng.randint(1, 300)), opcode=rng.choice([1, 2, 0, 3, 9, 15])))
            elif kind == "bad-json":
                writer.write(_frame(rng.choice([b"{", b"[]", b'{"type":"run"}', b'{"type":"hello","name":1}',
                                                b'"\xff\xfe"', b"null"])))
            else:
                writer.write(_frame(os.urandom(rng.randint(1, 2000)), opcode=2))
        await writer.drain()
        await asyncio.wait_for(reader.read(65536), 3)
    except (OSError, TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
        pass
    finally:
        writer.close()
    return kind


async def _healthy_agent(gw: Gateway, d: RedisDispatcher, jobs: int) -> int:
    """Submits ``jobs`` one by one and finishes each; returns how many completed."""
    queue = "fuzz-" + uuid.uuid4().hex[:6]
    done = 0
    async with _connect(gw) as ws:
        agent = await _hello(ws, "healthy-" + uuid.uuid4().hex[:6], queues=(queue,), concurrency=2)
        for _ in range(jobs):
            spec = _spec(queue)
            d.submit([spec])
            run = await agent.recv_type(p.Run, timeout=30)
            await agent.send(p.Accepted(job=run.job))
            await agent.send(p.StateReport(job=run.job, state=p.JobState.SUCCESS, exit_code=0))
            await agent.recv_type(p.Ack, timeout=30)
            done += 1
            await asyncio.sleep(0.05)
    return done


async def _flood(port: int) -> int:
    """Many half-open connections at once (bounded); the gateway must shed them without dying."""
    conns: list[Any] = []
    for _ in range(FLOOD):
        try:
            conns.append(await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), 5))
        except (OSError, TimeoutError):
            break
    await asyncio.sleep(1)
    for _, w in conns:
        w.close()
    return len(conns)


@pytest.mark.timeout(300)
async def test_gateway_survives_hostile_clients_while_an_agent_keeps_working(
        gateway: Gateway, dispatcher: RedisDispatcher) -> None:  # noqa: F811 - fixtures from test_gateway
    rng = random.Random(20261122)
    proc = psutil.Process(gateway.proc.pid)
    rss_before = proc.memory_info().rss

    async def attacks() -> dict[str, int]:
        tally: dict[str, int] = {}
        for _ in range(ROUNDS // 10):
            for kind in await asyncio.gather(*(_attack(gateway.port, rng) for _ in range(10))):
                tally[kind] = tally.get(kind, 0) + 1
        tally["flood"] = await _flood(gateway.port)
        return tally

    jobs = max(20, ROUNDS // 3)
    tally, done = await asyncio.gather(attacks(), _healthy_agent(gateway, dispatcher, jobs))
    assert done == jobs, f"the healthy agent finished {done} of {jobs} jobs"
    assert gateway.proc.alive(), "the gateway died"
    assert sum(v for k, v in tally.items() if k != "flood") == ROUNDS // 10 * 10
    # still serving new agents afterwards, and memory did not run away
    assert await _healthy_agent(gateway, dispatcher, 3) == 3
    grown = proc.memory_info().rss - rss_before
    assert grown < 100 * 2**20, f"gateway RSS grew by {grown / 2**20:.0f} MiB under fuzzing"
    print(f"fuzz: {tally}, healthy jobs finished: {done}, gateway RSS growth {grown / 2**20:.1f} MiB")
