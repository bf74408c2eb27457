"""Many simulated agents in one process, each a real WebSocket session speaking the agent protocol.

    python -m bench.simagents --url ws://127.0.0.1:8765/ws/agent --count 5000 --prefix sim-a --out recv.jsonl

Each agent says hello, heartbeats (with a ping, as the real agent does) at the interval the
gateway's welcome sets, answers every ``run`` with ``accepted`` and every ``start`` with an
immediate ``success``: no task process, so the benchmark measures dispatch, not Airflow. Every
received ``run`` is recorded as (job, agent, receive time) and written to ``--out`` when the
process gets SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import resource
import signal
import time
import uuid
from typing import Any

import orjson
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import WebSocketException

from edgeexec import protocol as p

RECEIVED: list[tuple[str, str, float]] = []


async def _agent(url: str, token: str, name: str, queue: str, concurrency: int, ready: asyncio.Queue[str]) -> None:
    headers = {"Authorization": f"Bearer {token}"}
    for attempt in range(20):
        try:
            async with connect(url, additional_headers=headers, max_size=None, compression=None,
                               ping_interval=None, open_timeout=120) as ws:
                await ws.send(p.encode(p.Hello(name=name, instance=uuid.uuid4().hex, queues=(queue,),
                                               concurrency=concurrency)).decode())
                welcome = p.decode(await ws.recv())
                if not isinstance(welcome, p.Welcome):  # e.g. a hello timeout while the gateway was swamped
                    raise ConnectionError(f"{name}: gateway answered hello with {welcome}")
                await ready.put(name)
                beat = asyncio.create_task(_heartbeats(ws, welcome.heartbeat_interval))
                try:
                    await _serve(ws, name)
                finally:
                    beat.cancel()
                return
        except (OSError, WebSocketException, TimeoutError, p.ProtocolError) as exc:
            if attempt >= 2:
                print(f"{name}: attempt {attempt + 1} failed: {exc}", flush=True)
            await asyncio.sleep(min(30.0, 0.5 * 2 ** attempt) * random.random())


async def _heartbeats(ws: ClientConnection, interval: float) -> None:
    await asyncio.sleep(random.uniform(0, interval))  # real fleets do not beat in lockstep
    frame = p.encode(p.Heartbeat(used=0, metrics={"cpu": 1.0, "mem": 10.0}, state="idle")).decode()
    while True:
        await ws.send(frame)
        await ws.ping()
        await asyncio.sleep(interval)


async def _serve(ws: ClientConnection, name: str) -> None:
    async for raw in ws:
        now = time.time()
        frame = p.decode(raw)
        if isinstance(frame, p.Run):
            RECEIVED.append((frame.job, name, now))
            await ws.send(p.encode(p.Accepted(job=frame.job)).decode())
        elif isinstance(frame, p.Start):
            await ws.send(p.encode(p.StateReport(job=frame.job, state=p.JobState.SUCCESS, exit_code=0)).decode())


async def main(args: argparse.Namespace) -> None:
    ready: asyncio.Queue[str] = asyncio.Queue()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    tasks: list[asyncio.Task[Any]] = []
    for i in range(args.count):
        name = f"{args.prefix}-{i:05d}"
        tasks.append(asyncio.create_task(_agent(args.url, args.token, name, args.queue, args.concurrency, ready)))
        if i % 200 == 199:
            await asyncio.sleep(0.05)  # a connection ramp, not a SYN flood
    await stop.wait()
    for t in tasks:
        t.cancel()
    with open(args.out, "wb") as f:
        for job, name, at in RECEIVED:
            f.write(orjson.dumps({"job": job, "agent": name, "at": at}) + b"\n")


def _raise_nofile() -> None:
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--url", required=True)
    ap.add_argument("--token", default=os.environ.get("AIRFLOW__EDGEEXEC__TOKEN", ""))
    ap.add_argument("--count", type=int, required=True)
    ap.add_argument("--prefix", required=True)
    ap.add_argument("--queue", default="bench")
    ap.add_argument("--concurrency", type=int, default=8)
    ap.add_argument("--out", required=True)
    _raise_nofile()
    asyncio.run(main(ap.parse_args()))
