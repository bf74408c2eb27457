"""Writes docs/benchmarks.md and its plots from bench/results/*.json (run last by `make bench`)."""

from __future__ import annotations

import datetime
import platform
from pathlib import Path
from typing import Any

import matplotlib
import orjson

matplotlib.use("Agg")
import matplotlib.pyplot as plt

ROOT = Path(__file__).parent.parent
RESULTS = ROOT / "bench" / "results"
DOC = ROOT / "docs" / "benchmarks.md"
IMG = ROOT / "docs" / "img"


def _load(name: str) -> dict[str, Any] | None:
    path = RESULTS / f"{name}.json"
    return orjson.loads(path.read_bytes()) if path.exists() else None


def _table(rows: list[dict[str, Any]], cols: list[tuple[str, str]]) -> list[str]:
    out = ["| " + " | ".join(h for _, h in cols) + " |", "|" + "---|" * len(cols)]
    out += ["| " + " | ".join(str(r.get(k, "")) for k, _ in cols) + " |" for r in rows]
    return out


def _check(ok: bool, text: str) -> str:
    return f"- {'met' if ok else '**missed**'}: {text}"


def dispatch_section(d: dict[str, Any]) -> list[str]:
    rows = d["rows"]
    by = {r["agents"]: r for r in rows}
    lines = ["## 1. Dispatch micro-benchmark", "",
             "One `edgeexec gateway` process, N simulated agents (real WebSocket sessions speaking the agent",
             "protocol, up to 5 000 per process, answering each `run` at once, "
             f"{rows[0].get('agent_concurrency', 4)} slots each), a private `redis-server`, jobs",
             "submitted through `RedisDispatcher` (the scheduler's code). Heartbeats every "
             f"{d['heartbeat_interval_s']:g} s, each with a ping.", "",
             "```bash", "make bench            # or: .venv-bench/bin/python -m bench.dispatch --sizes 1,100,1000,10000",
             "```", ""]
    lines += _table(rows, [("agents", "agents"), ("connect_s", "connect s"), ("latency_ms_p50", "enqueue→agent p50 ms"),
                           ("latency_ms_p99", "p99 ms"), ("jobs_per_s", "jobs/s (burst)"),
                           ("burst_gateway_cpu_pct", "gateway CPU % in burst"),
                           ("burst_loadgen_cpu_pct", "simulated agents + submitter CPU % in burst"),
                           ("burst_redis_cpu_pct", "Redis CPU % in burst"),
                           ("burst_machine_busy_pct", "machine busy % in burst (all cores)"),
                           ("idle_gateway_cpu_pct", "gateway CPU % idle"), ("rss_kb_per_agent", "RSS KB / agent"),
                           ("cpu_us_per_heartbeat", "gateway CPU µs / heartbeat"),
                           ("used_slots_after", "slots used after"), ("received_twice", "jobs received twice")])
    lines += ["", "![dispatch latency](img/dispatch_latency.png) ![gateway cost](img/gateway_cost.png)", "",
              "Targets:"]
    if 1000 in by:
        r = by[1000]
        lines.append(_check(r["latency_ms_p50"] <= 2 and r["latency_ms_p99"] <= 20,
                            f"dispatch median {r['latency_ms_p50']} ms (≤ 2) and p99 {r['latency_ms_p99']} ms (≤ 20) "
                            "with 1 000 agents"))
    if 10000 in by:
        r = by[10000]
        lines.append(_check(r["idle_gateway_cpu_pct"] < 50,
                            f"10 000 agents at {r['idle_gateway_cpu_pct']} % of one core (< 50 %) with 10 s heartbeats"))
        lines.append(_check(r["rss_kb_per_agent"] <= 50, f"{r['rss_kb_per_agent']} KB RSS per idle agent (≤ 50)"))
    best = max(r["jobs_per_s"] for r in rows)
    lines.append(_check(best >= 5000, f"{best:.0f} jobs/s through one gateway (≥ 5 000); each job is a `run`, "
                                      "`accepted`, `start`, `state` and `ack` on the socket and four Lua calls"))
    lines.append(_check(all(r["used_slots_after"] == 0 and r["received_twice"] == 0 for r in rows),
                        "exact slot accounting: every job received once, every slot back to 0"))
    _plot_dispatch(rows)
    return lines


def _plot_dispatch(rows: list[dict[str, Any]]) -> None:
    n = [r["agents"] for r in rows]
    fig, ax = plt.subplots(figsize=(5, 3.2))
    ax.plot(n, [r["latency_ms_p50"] for r in rows], "o-", label="p50")
    ax.plot(n, [r["latency_ms_p99"] for r in rows], "s-", label="p99")
    ax.set(xscale="log", yscale="log", xlabel="connected agents", ylabel="enqueue → agent (ms)",
           title="Dispatch latency, one gateway")
    ax.legend()
    fig.tight_layout()
    fig.savefig(IMG / "dispatch_latency.png", dpi=110)
    plt.close(fig)
    fig, ax = plt.subplots(figsize=(5, 3.2))
    ax.plot(n, [r["idle_gateway_cpu_pct"] for r in rows], "o-", label="idle CPU % (10 s heartbeats)")
    ax2 = ax.twinx()
    ax2.plot(n, [r["rss_kb_per_agent"] for r in rows], "s--", color="tab:red", label="RSS KB / agent")
    ax.set(xscale="log", xlabel="connected agents", ylabel="gateway CPU % of one core", title="Gateway cost")
    ax2.set_ylabel("RSS KB per agent")
    fig.legend(loc="upper left", bbox_to_anchor=(0.12, 0.88), fontsize=8)
    fig.tight_layout()
    fig.savefig(IMG / "gateway_cost.png", dpi=110)
    plt.close(fig)


def airflow_section(d: dict[str, Any]) -> list[str]:
    rows = d["rows"]
    names = {"edgeexec": "edgeexec EdgeExecutor", "edge3": "Edge provider 5.1.0 (defaults)",
             "celery": "CeleryExecutor 3.26 + Redis"}
    for r in rows:
        r["name"] = names.get(r["executor"], r["executor"])
    lines = ["## 2. Airflow end to end", "",
             "Airflow 3.3.2 on a private PostgreSQL, one worker/agent with concurrency 8 at default settings, the",
             "same DAGs (`bench/dags/`), one executor after the other on this machine. After a warm-up run:",
             f"`bench_one` (one trivial task) {rows[0]['runs']} times, then `bench_fifty` (50 trivial tasks in "
             "parallel). All times from the metadata DB.", "",
             "```bash", ".venv-bench/bin/python -m bench.airflow_e2e --runs 10   # part of make bench", "```", ""]
    lines += _table(rows, [("name", "executor"), ("lone_queued_to_running_s_median", "lone task queued→running s (median)"),
                           ("one_task_run_s_median", "1-task DAG run s (median)"),
                           ("fifty_queued_to_running_s_median", "50 tasks: queued→running s (median)"),
                           ("fifty_makespan_s", "50 tasks: makespan s"), ("fifty_tasks_per_s", "tasks/s")])
    ratios = d.get("ratios_peer_over_edgeexec", {})
    if ratios:
        lines += ["", "Ratios (peer ÷ edgeexec; above 1 means edgeexec is faster):", ""]
        lines += [f"- {k.replace('/', ': ')} = {v}" for k, v in ratios.items()]
    lines += ["", "![queued to running](img/airflow_latency.png)", "", "Targets:"]
    by = {r["executor"]: r for r in rows}
    ours = by.get("edgeexec")
    if ours and "celery" in by:
        c = by["celery"]
        lines.append(_check(ours["lone_queued_to_running_s_median"] <= c["lone_queued_to_running_s_median"],
                            f"lone-task queued→running median {ours['lone_queued_to_running_s_median']} s vs Celery's "
                            f"{c['lone_queued_to_running_s_median']} s (≤ Celery's)"))
    if ours and "edge3" in by:
        e = by["edge3"]
        ratio = e["lone_queued_to_running_s_median"] / ours["lone_queued_to_running_s_median"]
        lines.append(_check(ratio >= 10, f"{ratio:.1f}x better than the Edge provider's lone-task median (≥ 10x)"))
    _plot_airflow(rows)
    return lines


def _plot_airflow(rows: list[dict[str, Any]]) -> None:
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.4))
    labels = [r["executor"] for r in rows]
    axes[0].boxplot([r["lone_queued_to_running_s_all"] for r in rows], tick_labels=labels)
    axes[0].set(yscale="log", ylabel="seconds", title="lone task: queued → running")
    axes[1].boxplot([r["fifty_queued_to_running_s_all"] for r in rows], tick_labels=labels)
    axes[1].set(ylabel="seconds", title="50 parallel tasks: queued → running")
    fig.tight_layout()
    fig.savefig(IMG / "airflow_latency.png", dpi=110)
    plt.close(fig)


def batch_section(d: dict[str, Any]) -> list[str]:
    rows = d["rows"]
    lines = ["## 3. AWS Batch API calls per task", "",
             f"{rows[0]['tasks']} tasks queued at once, a heartbeat every second, jobs that run "
             f"{d['job_seconds']:g} s, both executors against the same moto server (`tests/batch_standin.py`),",
             "configured by the same `[aws_batch_executor]` variables; calls counted at the endpoint.", "",
             "```bash", ".venv-bench/bin/python -m bench.batch --tasks 200   # part of make bench", "```", ""]
    lines += _table(rows, [("executor", "executor"), ("submit_job", "SubmitJob"), ("describe_jobs", "DescribeJobs"),
                           ("calls_per_task", "calls per task"), ("succeeded", "succeeded"), ("seconds", "seconds")])
    ours, theirs = rows
    lines += ["", "Targets:", _check(ours["calls_per_task"] < theirs["calls_per_task"],
                                     f"{ours['calls_per_task']} calls per task vs the Amazon provider's "
                                     f"{theirs['calls_per_task']} ({d['ratio_calls_per_task']}x fewer)")]
    fig, ax = plt.subplots(figsize=(4.5, 3))
    ax.bar([r["executor"] for r in rows], [r["calls_per_task"] for r in rows])
    ax.set(ylabel="API calls per task", title="AWS Batch API calls")
    fig.tight_layout()
    fig.savefig(IMG / "batch_calls.png", dpi=110)
    plt.close(fig)
    lines += ["", "![batch calls](img/batch_calls.png)"]
    return lines


def main() -> int:
    IMG.mkdir(parents=True, exist_ok=True)
    head = ["# Benchmarks", "",
            "Generated by `make bench` (`bench/report.py` from `bench/results/*.json`); every figure below was "
            "measured on this machine; each section comes from one run of its benchmark, with the peers "
            "measured in that same run. Do not edit by hand.", "",
            f"Machine: {platform.machine()}, {__import__('os').cpu_count()} cores, Python {platform.python_version()}; "
            f"written {datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC.", ""]
    body: list[str] = []
    for name, section in (("dispatch", dispatch_section), ("airflow_e2e", airflow_section), ("batch", batch_section)):
        data = _load(name)
        if data is None:
            body += [f"## {name}", "", f"not measured: bench/results/{name}.json is missing", ""]
        else:
            body += [*section(data), ""]
    notes = ROOT / "bench" / "NOTES.md"
    tail = ["## What the numbers say", "", notes.read_text().strip(), ""] if notes.exists() else []
    DOC.write_text("\n".join(head + body + tail))
    print(f"wrote {DOC}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
