"""Dispatch micro-benchmark: one real gateway process, N simulated agents on real WebSockets, real Redis.

    .venv/bin/python -m bench.dispatch [--sizes 1,100,1000,10000] [--out bench/results/dispatch.json]

Per fleet size it measures, in this order:
* connect: time until every agent has a session;
* idle: gateway CPU % and RSS per connected agent over 3 heartbeat intervals (10 s heartbeats,
  each with a ping, as real agents send them), and the gateway CPU per heartbeat;
* latency: jobs submitted one at a time through the executor's dispatcher (RedisDispatcher, the
  code the scheduler runs), enqueue -> run frame received by the agent, p50/p99;
* throughput: a burst of jobs through the gateway (run, accepted, state, ack per job), jobs/s
  until the executor has read every success event, with gateway CPU % meanwhile;
* accounting: every job assigned once, received once, and every agent's used slots back to 0.
"""

from __future__ import annotations

import argparse
import math
import os
import resource
import signal
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import orjson
import psutil
import redis

from edgeexec.airflow.redis_dispatcher import RedisDispatcher
from edgeexec.dispatch import JobSpec
from edgeexec.localstack.processes import BIN, Proc, RedisServer, free_port, port_open, wait_for
from edgeexec.protocol import JobState
from edgeexec.store.keys import Keys

ROOT = Path(__file__).parent.parent
SECRET = "bench-" + uuid.uuid4().hex
HEARTBEAT = 10.0
PER_PROCESS = 5000
PAYLOAD = orjson.dumps({"token": "x" * 600, "ti": {"id": str(uuid.uuid4()), "dag_id": "bench", "task_id": "t" * 40},
                        "dag_rel_path": "bench.py", "log_path": "dag_id=bench/run_id=x/task_id=t/attempt=1.log",
                        "pad": "p" * 300}).decode()  # ~1.2 KB, the size of a real ExecuteTask workload


def _raise_nofile() -> None:
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def _cpu(proc: psutil.Process) -> float:
    t = proc.cpu_times()
    return float(t.user + t.system)


def _busy() -> float:
    """CPU seconds the whole machine has spent busy (all cores)."""
    t = psutil.cpu_times()
    return float(sum(t) - t.idle - getattr(t, "iowait", 0.0))


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, math.ceil(q * len(ordered)) - 1)] if ordered else float("nan")


class Fleet:
    def __init__(self, n: int, tmp: Path, concurrency: int) -> None:
        self.n, self.tmp, self.concurrency = n, tmp, concurrency
        self.redis = RedisServer(tmp / "redis").start()
        self.keys = Keys("bench" + uuid.uuid4().hex[:6])
        self.port = free_port()
        env = {"PATH": f"{BIN}:/usr/bin:/bin", "AIRFLOW__EDGEEXEC__SHARED_SECRET": SECRET,
               "AIRFLOW__EDGEEXEC__ALLOW_SHARED_SECRET": "true", "EDGEEXEC_LOG_LEVEL": "WARNING"}
        self.gateway = Proc([str(BIN / "edgeexec"), "gateway", "--port", str(self.port), "--redis-url", self.redis.url,
                             "--redis-prefix", self.keys.prefix, "--heartbeat-interval", str(HEARTBEAT)],
                            env=env, log=tmp / "gateway.log")
        wait_for(lambda: port_open(self.port), 60, "the gateway")
        self.gw = psutil.Process(self.gateway.pid)
        time.sleep(1)
        self.rss_base = self.gw.memory_info().rss
        self.client = redis.Redis.from_url(self.redis.url, decode_responses=True)
        self.sims: list[tuple[Proc, Path]] = []

    def connect(self) -> float:
        t0 = time.monotonic()
        for i in range(math.ceil(self.n / PER_PROCESS)):
            count = min(PER_PROCESS, self.n - i * PER_PROCESS)
            out = self.tmp / f"recv-{i}.jsonl"
            proc = Proc([sys.executable, "-m", "bench.simagents", "--url", f"ws://127.0.0.1:{self.port}/ws/agent",
                         "--count", str(count), "--prefix", f"sim{i}", "--out", str(out),
                         "--concurrency", str(self.concurrency)],
                        env={**os.environ, "AIRFLOW__EDGEEXEC__TOKEN": SECRET}, log=self.tmp / f"sim-{i}.log", cwd=ROOT)
            self.sims.append((proc, out))
        wait_for(lambda: self.connected() >= self.n, 600, f"{self.n} simulated agents to connect", 0.5)
        return time.monotonic() - t0

    def connected(self) -> int:
        return int(self.client.zcard(self.keys.heartbeats))

    def used_slots(self) -> int:
        pipe = self.client.pipeline(transaction=False)
        names = list(self.client.smembers(self.keys.agents))
        for name in names:
            pipe.hget(self.keys.agent(name), "used")
        return sum(int(v or 0) for v in pipe.execute())

    def received(self) -> list[dict[str, Any]]:
        for proc, _ in self.sims:
            proc.send(signal.SIGTERM)
        for proc, _ in self.sims:
            wait_for(lambda p=proc: not p.alive(), 60, "a simulator to exit")  # type: ignore[misc]
        return [orjson.loads(line) for _, out in self.sims if out.exists() for line in out.read_bytes().splitlines()]

    def stop(self) -> None:
        for proc, _ in self.sims:
            proc.stop()
        self.gateway.stop()
        self.redis.stop()


def _spec() -> JobSpec:
    job = uuid.uuid4().hex
    return JobSpec(job, f"ti:{job}:1", "task", "bench", 1, 0, PAYLOAD)


def _drain_events(d: RedisDispatcher, want: set[str], timeout: float) -> dict[str, list[str]]:
    seen: dict[str, list[str]] = {}
    deadline = time.monotonic() + timeout
    done = 0
    while done < len(want) and time.monotonic() < deadline:
        for e in d.events():
            seen.setdefault(e.job_id, []).append(e.state.value)
            if e.state is JobState.SUCCESS and e.job_id in want:
                done += 1
        time.sleep(0.005)
    return seen


def measure(n: int, latency_jobs: int, burst: int, concurrency: int) -> dict[str, Any]:
    tmp = Path(tempfile.mkdtemp(prefix=f"edgeexec-bench-{n}-"))
    fleet = Fleet(n, tmp, concurrency)
    out: dict[str, Any] = {"agents": n, "agent_concurrency": concurrency}
    try:
        out["connect_s"] = round(fleet.connect(), 2)
        time.sleep(2)
        window = 3 * HEARTBEAT
        c0, t0 = _cpu(fleet.gw), time.monotonic()
        time.sleep(window)
        cpu_s, elapsed = _cpu(fleet.gw) - c0, time.monotonic() - t0
        rss = fleet.gw.memory_info().rss
        out["idle_gateway_cpu_pct"] = round(100 * cpu_s / elapsed, 2)
        out["gateway_rss_mb"] = round(rss / 2**20, 1)
        out["rss_kb_per_agent"] = round((rss - fleet.rss_base) / 1024 / n, 1)
        beats = n * elapsed / HEARTBEAT
        out["cpu_us_per_heartbeat"] = round(1e6 * cpu_s / beats, 1)

        d = RedisDispatcher.from_url(fleet.redis.url, fleet.keys.prefix, liveness_s=10 * HEARTBEAT, job_ttl_s=600)
        d.start("bench")
        submitted: dict[str, float] = {}
        for _ in range(latency_jobs):
            spec = _spec()
            submitted[spec.job_id] = time.time()
            d.submit([spec])
            time.sleep(0.01)
        _drain_events(d, set(submitted), 120)

        burst_jobs = [_spec() for _ in range(burst)]
        loadgen = [psutil.Process(), *(psutil.Process(proc.pid) for proc, _ in fleet.sims)]
        redis_proc = psutil.Process(fleet.redis.proc.pid) if fleet.redis.proc else None
        l0, r0, m0 = sum(map(_cpu, loadgen)), _cpu(redis_proc) if redis_proc else 0.0, _busy()
        c0, t0 = _cpu(fleet.gw), time.monotonic()
        for i in range(0, burst, 500):
            d.submit(burst_jobs[i:i + 500])
        seen = _drain_events(d, {s.job_id for s in burst_jobs}, 600)
        elapsed = time.monotonic() - t0
        out["burst_jobs"] = burst
        out["jobs_per_s"] = round(burst / elapsed, 0)
        out["burst_gateway_cpu_pct"] = round(100 * (_cpu(fleet.gw) - c0) / elapsed, 1)
        # where the rest of the machine went: is the gateway the limit, or the box?
        out["burst_loadgen_cpu_pct"] = round(100 * (sum(map(_cpu, loadgen)) - l0) / elapsed, 1)
        out["burst_redis_cpu_pct"] = round(100 * ((_cpu(redis_proc) if redis_proc else 0.0) - r0) / elapsed, 1)
        out["burst_machine_busy_pct"] = round(100 * (_busy() - m0) / elapsed / (psutil.cpu_count() or 1), 1)
        finished = sum(1 for s in burst_jobs if seen.get(s.job_id, [])[-1:] == ["success"])
        out["burst_finished"] = finished

        time.sleep(1)
        out["used_slots_after"] = fleet.used_slots()
        received = fleet.received()
        counts: dict[str, int] = {}
        for r in received:
            counts[r["job"]] = counts.get(r["job"], 0) + 1
        out["received_twice"] = sum(1 for c in counts.values() if c > 1)
        lat = [1000 * (r["at"] - submitted[r["job"]]) for r in received if r["job"] in submitted]
        out["latency_ms_p50"] = round(statistics.median(lat), 2) if lat else None
        out["latency_ms_p99"] = round(_pct(lat, 0.99), 2) if lat else None
        out["latency_samples"] = len(lat)
        d.stop(terminate=False)
    finally:
        fleet.stop()
    return out


COLUMNS = ("agents", "connect_s", "idle_gateway_cpu_pct", "rss_kb_per_agent", "cpu_us_per_heartbeat",
           "latency_ms_p50", "latency_ms_p99", "jobs_per_s", "burst_gateway_cpu_pct", "burst_loadgen_cpu_pct",
           "burst_redis_cpu_pct", "burst_machine_busy_pct", "used_slots_after",
           "received_twice")


def table(rows: list[dict[str, Any]]) -> str:
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(str(r.get(c)) for c in COLUMNS) + " |" for r in rows]
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="1,100,1000,10000")
    ap.add_argument("--latency-jobs", type=int, default=300)
    ap.add_argument("--burst", type=int, default=20000)
    ap.add_argument("--concurrency", type=int, default=8, help="slots per simulated agent (the agent's default)")
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "dispatch.json"))
    args = ap.parse_args()
    _raise_nofile()
    rows = []
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    for n in (int(s) for s in args.sizes.split(",")):
        row = measure(n, args.latency_jobs, args.burst, args.concurrency)
        print(orjson.dumps(row).decode(), flush=True)
        rows.append(row)
        # after every size: a later size that fails (10 000 sockets on a small box) keeps the others
        Path(args.out).write_bytes(orjson.dumps({"at": time.time(), "heartbeat_interval_s": HEARTBEAT,
                                                 "cpus": psutil.cpu_count(), "rows": rows},
                                                option=orjson.OPT_INDENT_2))
    print(table(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
