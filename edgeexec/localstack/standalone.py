"""`edgeexec standalone` and `edgeexec demo`: a complete local stack on SQLite with one agent."""

from __future__ import annotations

import signal
import sys
import time
from importlib import resources
from pathlib import Path
from types import FrameType
from typing import Any

from edgeexec.localstack.stack import AgentSpec, LocalStack, StackConfig

DEMO_DAGS = ("edgeexec_example_etl", "edgeexec_example_branch")
OK_STATES = {"success", "skipped"}


def _sigterm(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def main(command: str, home: str | None) -> int:
    dags = Path(str(resources.files("edgeexec") / "example_dags"))
    stack = LocalStack(StackConfig(home=Path(home or ".demo"), dags_folder=dags,
                                   agents=(AgentSpec("demo-agent", ("default",), 8),)))
    signal.signal(signal.SIGTERM, _sigterm)
    signal.signal(signal.SIGINT, signal.default_int_handler)  # Ctrl-C even if our parent ignored SIGINT
    print(f"starting Redis, Airflow (SQLite), a gateway and an agent in {stack.home} ...", flush=True)
    try:
        stack.start()
        if command == "standalone":
            return _serve(stack)
        return _demo(stack)
    except KeyboardInterrupt:
        print("\nstopping every process started ...", flush=True)
        return 130
    finally:
        stack.stop()


def _serve(stack: LocalStack) -> int:
    print(f"\nAirflow UI:   {stack.api_url}  (local mode: every user is an admin, no login needed)")
    print(f"Gateway:      {stack.gateway_url}")
    print(f"Logs:         {stack.home}/*.log")
    print("Press Ctrl-C to stop everything.", flush=True)
    while all(p.alive() for p in stack.procs.values()):
        time.sleep(1)
    dead = [n for n, p in stack.procs.items() if not p.alive()]
    print(f"stopping: {', '.join(dead)} exited (see {stack.home}/<name>.log)", file=sys.stderr)
    return 1


def _demo(stack: LocalStack) -> int:
    stack.wait_for_dags(list(DEMO_DAGS))
    runs = {dag: stack.trigger(dag) for dag in DEMO_DAGS}
    rows: list[tuple[str, str, str]] = []
    ok = True
    for dag, run_id in runs.items():
        state = stack.wait_for_run(dag, run_id)
        ok &= state == "success"
        for ti in sorted(stack.task_instances(dag, run_id), key=lambda t: (t["task_id"], t["map_index"])):
            ok &= ti["state"] in OK_STATES
            rows.append((_name(ti), ti["state"] or "none", _latency(ti)))
    _table(rows)
    print("all tasks succeeded" if ok else "some tasks did not succeed", flush=True)
    return 0 if ok else 1


def _name(ti: dict[str, Any]) -> str:
    mapped = f"[{ti['map_index']}]" if ti["map_index"] >= 0 else ""
    return f"{ti['dag_id']}.{ti['task_id']}{mapped}"


def _latency(ti: dict[str, Any]) -> str:
    from datetime import datetime

    if not ti.get("queued_when") or not ti.get("start_date"):
        return "-"
    q = datetime.fromisoformat(ti["queued_when"])
    s = datetime.fromisoformat(ti["start_date"])
    return f"{(s - q).total_seconds() * 1000:.0f} ms"


def _table(rows: list[tuple[str, str, str]]) -> None:
    head = ("task", "state", "queued -> running")
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(3)]
    for r in [head, tuple("-" * w for w in widths), *rows]:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)))
