"""``agent`` command line (also ``python -m agent``), flags named as in ``airflow edge worker``."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Sequence

from edgeexec import logs
from edgeexec.errors import ConfigError

log = logging.getLogger("agent")


def _queues(value: str) -> tuple[str, ...]:
    return tuple(q.strip() for q in value.split(",") if q.strip())


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="agent", description="edgeexec edge agent")
    sub = ap.add_subparsers(dest="command", required=True)
    start = sub.add_parser("start", help="connect to a gateway and run Airflow tasks")
    start.add_argument("-q", "--queues", type=_queues, help="comma-separated Airflow queues to serve")
    start.add_argument("-c", "--concurrency", type=int, help="slots: pool slots of work run at once")
    start.add_argument("-H", "--name", "--edge-hostname", dest="name", help="agent name (default: host name)")
    start.add_argument("--url", help="gateway agent endpoint, e.g. wss://gateway.example/ws/agent")
    start.add_argument("--token", help="agent token (prefer AIRFLOW__EDGEEXEC__TOKEN: flags show in ps)")
    start.add_argument("--execution-api-url", help="Airflow Execution API URL")
    start.add_argument("--drain-timeout", type=float, help="seconds a drain waits before terminating jobs")
    start.add_argument("--kill-grace", type=float, help="seconds between SIGTERM and SIGKILL of a job")
    start.add_argument("--ca-file", help="CA bundle to verify a wss:// gateway")
    start.add_argument("--log-level", default=None)
    return ap


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    logs.setup(args.log_level)
    from agent.core import Agent
    from agent.settings import AgentSettings

    try:
        settings = AgentSettings.load(
            queues=args.queues, concurrency=args.concurrency, name=args.name, url=args.url, token=args.token,
            execution_api_url=args.execution_api_url, drain_timeout=args.drain_timeout,
            kill_grace=args.kill_grace, ca_file=args.ca_file,
        )
    except ConfigError as exc:
        print(f"agent: {exc}", file=sys.stderr)
        return 2
    return asyncio.run(Agent(settings).run())


if __name__ == "__main__":
    raise SystemExit(main())
