"""Prometheus metrics of one gateway (prometheus-client, one registry per app: no globals).

Counters and the dispatch histogram are this process's; fleet gauges (agents, slots, pending jobs)
are read from Redis at most once per ``fleet_every`` seconds and reused by the scrapes in between,
so every gateway reports the same fleet-wide figures and a scrape costs Redis nothing most of the
time, whatever the fleet's size or the number of scrapers.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import redis.asyncio as aioredis
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from edgeexec.gateway import status
from edgeexec.store.keys import Keys

LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300)


class GatewayMetrics:
    def __init__(self, fleet_every: float = 15.0) -> None:
        self.fleet_every = fleet_every
        self._fleet_at = float("-inf")
        self._fleet_lock = asyncio.Lock()
        self.registry = CollectorRegistry()
        r = self.registry
        self.frames_in = Counter("edgeexec_frames_in", "Frames received from agents", ["type"], registry=r)
        self.frames_out = Counter("edgeexec_frames_out", "Frames sent to agents", ["type"], registry=r)
        self.auth_failures = Counter("edgeexec_auth_failures", "Refused connections", ["status"], registry=r)
        self.sessions = Counter("edgeexec_agent_sessions", "Agent sessions registered", registry=r)
        self.reconnects = Counter("edgeexec_agent_reconnects",
                                  "Sessions of agents that had been connected before", registry=r)
        self.cut_off = Counter("edgeexec_agent_sessions_cut_off",
                               "Agent sessions the gateway ended for misbehaviour, by close code", ["code"],
                               registry=r)
        self.refused_frames = Counter("edgeexec_frames_refused",
                                      "Agent frames refused without any write, by reason", ["reason"], registry=r)
        self.dispatch = Histogram("edgeexec_dispatch_latency_seconds", "Job submitted -> run frame sent",
                                  buckets=LATENCY_BUCKETS, registry=r)
        self.agents = Gauge("edgeexec_agents", "Known agents by state", ["state"], registry=r)
        self.connected = Gauge("edgeexec_agents_connected", "Agents connected to any gateway", registry=r)
        self.local = Gauge("edgeexec_gateway_sessions", "Agent sessions open on this gateway", registry=r)
        self.slots_total = Gauge("edgeexec_queue_slots_total", "Slots of connected agents per queue", ["queue"],
                                 registry=r)
        self.slots_used = Gauge("edgeexec_queue_slots_used", "Slots in use per queue", ["queue"], registry=r)
        self.pending = Gauge("edgeexec_queue_pending_jobs", "Jobs waiting for a slot per queue", ["queue"], registry=r)
        self.too_big = Gauge("edgeexec_queue_too_big_jobs",
                             "Pending jobs needing more slots than any connected agent of the queue has", ["queue"],
                             registry=r)

    def dispatched(self, enqueued_ms: int) -> None:
        if enqueued_ms:
            self.dispatch.observe(max(0.0, time.time() - enqueued_ms / 1000))

    async def render(self, client: aioredis.Redis, keys: Keys, local_sessions: int) -> bytes:
        self.local.set(local_sessions)
        async with self._fleet_lock:  # concurrent scrapes share one refresh
            if time.monotonic() - self._fleet_at >= self.fleet_every:
                await self._refresh_fleet(client, keys)
                self._fleet_at = time.monotonic()
        out: bytes = generate_latest(self.registry)
        return out

    async def _refresh_fleet(self, client: aioredis.Redis, keys: Keys) -> None:
        fleet = await status.agents(client, keys)
        queues = await status.queues(client, keys, fleet)
        for g in (self.agents, self.slots_total, self.slots_used, self.pending, self.too_big):
            g.clear()
        by_state: dict[str, int] = {}
        for a in fleet:
            by_state[a["state"]] = by_state.get(a["state"], 0) + 1
        for state, n in by_state.items():
            self.agents.labels(state=state).set(n)
        self.connected.set(sum(1 for a in fleet if a["connected"]))
        for q, v in queues.items():
            self._queue(q, v)

    def _queue(self, queue: str, v: dict[str, Any]) -> None:
        self.slots_total.labels(queue=queue).set(v["slots_total"])
        self.slots_used.labels(queue=queue).set(v["slots_used"])
        self.pending.labels(queue=queue).set(v["pending"])
        self.too_big.labels(queue=queue).set(v["too_big"])
