"""Read models of the fleet for status clients, the dashboard and /metrics (no secrets in them).

Agent records and job refs only: tokens and workloads (which carry the Execution-API JWT) are
never read here.
"""

from __future__ import annotations

from typing import Any

import orjson
import redis.asyncio as aioredis

from edgeexec.protocol import AgentRecord, JobRecord
from edgeexec.states import AgentState
from edgeexec.store.keys import Keys

AGENT_FIELDS = ("name", "state", "connected", "queues", "conc", "used", "metrics", "comments", "seen", "since",
                "gw", "versions", "maintenance")


def _agent(values: list[Any], jobs: list[JobRecord]) -> AgentRecord | None:
    h = dict(zip(AGENT_FIELDS, values, strict=True))
    if not h.get("name"):
        return None
    return {
        "name": h["name"], "state": display_state(h.get("state") or AgentState.UNKNOWN, int(h.get("used") or 0)),
        "connected": h.get("connected") == "1",
        "queues": orjson.loads(h.get("queues") or "[]"), "concurrency": int(h.get("conc") or 0),
        "used": int(h.get("used") or 0), "metrics": orjson.loads(h.get("metrics") or "{}"),
        "comments": h.get("comments") or "", "last_seen_ms": int(h.get("seen") or 0),
        "since_ms": int(h.get("since") or 0), "gateway": h.get("gw") or "",
        "versions": orjson.loads(h.get("versions") or "{}"), "maintenance": h.get("maintenance") == "1",
        "jobs": jobs,
    }


JOB_FIELDS = ("ref", "state", "kind", "queue", "label")


def _job(job: str, ref: str | None, state: str | None, kind: str | None, queue: str | None,
         label: str | None) -> JobRecord:
    return {"job": job, "ref": ref or "", "state": state or "", "kind": kind or "", "queue": queue or "",
            "label": label or ""}


def display_state(state: str, used: int) -> str:
    """The state every view shows. An agent reports its state with each heartbeat, but slots are
    taken by the scripts the moment a job is placed: one that holds slots is running, not idle."""
    return AgentState.RUNNING if state == AgentState.IDLE and used > 0 else state


async def agents(client: aioredis.Redis, keys: Keys, names: list[str] | None = None) -> list[AgentRecord]:
    if names is None:
        members: Any = await client.smembers(keys.agents)
        names = sorted(members)
    pipe = client.pipeline(transaction=False)
    for n in names:
        pipe.hmget(keys.agent(n), list(AGENT_FIELDS))
        pipe.smembers(keys.agent_jobs(n))
    raw = await pipe.execute()
    job_ids = [sorted(raw[i + 1]) for i in range(0, len(raw), 2)]
    pipe = client.pipeline(transaction=False)
    for ids in job_ids:
        for j in ids:
            pipe.hmget(keys.job(j), list(JOB_FIELDS))
    flat = iter(await pipe.execute())
    out = []
    for i, ids in enumerate(job_ids):
        jobs = [_job(j, *next(flat)) for j in ids]
        rec = _agent(raw[2 * i], jobs)
        if rec is not None:
            out.append(rec)
    return out


async def queues(client: aioredis.Redis, keys: Keys, fleet: list[AgentRecord]) -> dict[str, dict[str, int]]:
    """Per queue: pending jobs, and slots used/total over the connected agents serving it."""
    known: Any = await client.smembers(keys.queues)
    names: list[str] = sorted(set(known) | {q for a in fleet for q in a["queues"]})
    pipe = client.pipeline(transaction=False)
    for q in names:
        pipe.zrange(keys.psizes(q), 0, -1)
    sizes = await pipe.execute()
    pipe = client.pipeline(transaction=False)
    for q, ss in zip(names, sizes, strict=True):
        for s in ss:
            pipe.zcard(keys.pending(q, int(s)))
    counts = iter(await pipe.execute())
    out: dict[str, dict[str, int]] = {}
    for q, ss in zip(names, sizes, strict=True):
        live = [a for a in fleet if q in a["queues"] and a["connected"]]
        largest = max((a["concurrency"] for a in live), default=0)
        pending = {int(s): next(counts) for s in ss}
        out[q] = {"pending": sum(pending.values()), "agents": len(live),
                  "slots_total": sum(a["concurrency"] for a in live), "slots_used": sum(a["used"] for a in live),
                  # pending jobs that need more slots than any connected agent of the queue has
                  "too_big": sum(n for size, n in pending.items() if size > largest)}
    return out
