"""`edgeexec standalone` and `edgeexec demo`: a complete local stack on SQLite with agents.

standalone serves the caller's DAGs (``--dags-folder``, default ``[core] dags_folder``) until
Ctrl-C; demo runs DAGs once (the bundled examples by default) and exits 0 iff all succeeded.
"""

from __future__ import annotations

import shlex
import signal
import sys
import time
from collections.abc import Sequence
from importlib import resources
from pathlib import Path
from types import FrameType
from typing import Any

from edgeexec.errors import ConfigError
from edgeexec.localstack.stack import AgentSpec, LocalStack, StackConfig

DEMO_DAGS = ("edgeexec_example_etl", "edgeexec_example_branch")
OK_STATES = {"success", "skipped"}


def _sigterm(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


DEFAULT_AGENT = AgentSpec("demo-agent", ("default",), 8)


def user_dags_folder() -> Path:
    """The caller's ``[core] dags_folder`` (their airflow.cfg or AIRFLOW__CORE__DAGS_FOLDER), as
    ``airflow standalone`` uses it."""
    from airflow.configuration import conf

    return Path(conf.get("core", "dags_folder")).expanduser()


def main(command: str, home: str | None, dags_folder: str | None = None, agents: Sequence[str] = (),
         dag_ids: Sequence[str] = ()) -> int:
    examples = Path(str(resources.files("edgeexec") / "example_dags"))
    if command == "demo":
        if dags_folder and not dag_ids:
            raise ConfigError("with --dags-folder, name the DAGs the demo runs: --dag ID (repeatable)")
        folder, runs = (Path(dags_folder), tuple(dag_ids)) if dags_folder else (examples, dag_ids or DEMO_DAGS)
    else:
        folder, runs = (Path(dags_folder) if dags_folder else user_dags_folder()), ()
        if not dags_folder and not folder.exists():
            folder.mkdir(parents=True)  # a new user's [core] dags_folder, as airflow standalone makes it
            print(f"created {folder}: put your DAG files there", flush=True)
    folder = folder.expanduser().resolve()
    if not folder.is_dir():
        raise ConfigError(f"DAGs folder {folder} does not exist: create it, or pass --dags-folder DIR")
    specs = tuple(AgentSpec.parse(a) for a in agents) or (DEFAULT_AGENT,)
    stack = LocalStack(StackConfig(home=Path(home or ".demo"), dags_folder=folder, agents=specs,
                                   inherit_airflow_env=True))
    signal.signal(signal.SIGTERM, _sigterm)
    signal.signal(signal.SIGINT, signal.default_int_handler)  # Ctrl-C even if our parent ignored SIGINT
    print(f"starting Redis, Airflow (SQLite) with DAGs from {folder}, a gateway and {len(specs)} agent(s) "
          f"in {stack.home} ...", flush=True)
    try:
        stack.start()
        if command == "standalone":
            return _serve(stack)
        return _demo(stack, runs)
    except KeyboardInterrupt:
        print("\nstopping every process started ...", flush=True)
        return 130
    finally:
        stack.stop()


def _serve(stack: LocalStack) -> int:
    print(f"\nAirflow UI:   {stack.api_url}  (local mode: every user is an admin, no login needed)")
    print(f"DAGs folder:  {stack.cfg.dags_folder}")
    print(f"Gateway:      {stack.gateway_url}")
    print(f"Redis:        {stack.redis_url}")
    for spec in stack.cfg.agents:
        print(f"Agent:        {spec.name} (queues {','.join(spec.queues)}, {spec.concurrency} slots)")
    print(f"Logs:         {stack.home}/*.log")
    print("\nOne more agent, on queue 'other' (tasks with queue='other' run there):")
    print(f"  {another_agent_command(stack)}")
    print("\nPress Ctrl-C to stop everything.", flush=True)
    while all(p.alive() for p in stack.procs.values()):
        time.sleep(1)
    dead = [n for n, p in stack.procs.items() if not p.alive()]
    print(f"stopping: {', '.join(dead)} exited (see {stack.home}/<name>.log)", file=sys.stderr)
    return 1


def another_agent_command(stack: LocalStack) -> str:
    """A command line that starts one more agent against this stack (its development secret included:
    the stack is local and accepts one shared secret)."""
    env = stack.agent_env()
    keep = ("AIRFLOW_HOME", "AIRFLOW__CORE__DAGS_FOLDER", "AIRFLOW__CORE__EXECUTION_API_SERVER_URL",
            "AIRFLOW__EDGEEXEC__URL", "AIRFLOW__EDGEEXEC__TOKEN", "AIRFLOW__EDGEEXEC__EXECUTION_API_URL",
            "AIRFLOW__LOGGING__BASE_LOG_FOLDER", "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN")
    assigns = " ".join(f"{k}={shlex.quote(env[k])}" for k in keep)
    return f"{assigns} {shlex.quote(str(Path(sys.executable).parent / 'agent'))} start -q other -c 4 --name agent-other"


def _demo(stack: LocalStack, dag_ids: Sequence[str]) -> int:
    stack.wait_for_dags(list(dag_ids))
    runs = {dag: stack.trigger(dag) for dag in dag_ids}
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
    if s < q:
        return "- (deferred, resumed)"  # queued again after the triggerer; start_date is the first start
    return f"{(s - q).total_seconds() * 1000:.0f} ms"


def _table(rows: list[tuple[str, str, str]]) -> None:
    head = ("task", "state", "queued -> running")
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(3)]
    for r in [head, tuple("-" * w for w in widths), *rows]:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)))
