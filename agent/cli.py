"""``agent`` command line (also ``python -m agent``), flags named as in ``airflow edge worker``."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from edgeexec import console
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
    start.add_argument("--team", help="the Airflow team this agent works for (multi-team; its gateway serves it)")
    start.add_argument("--token", help="agent token (prefer AIRFLOW__EDGEEXEC__TOKEN: flags show in ps)")
    start.add_argument("--execution-api-url", help="Airflow Execution API URL")
    start.add_argument("--drain-timeout", type=float, help="seconds a drain waits before terminating jobs")
    start.add_argument("--kill-grace", type=float, help="seconds between SIGTERM and SIGKILL of a job")
    start.add_argument("--ca-file", help="CA bundle to verify a wss:// gateway")
    start.add_argument("--journal", help="append a JSON line per job start and exit to this file")
    start.add_argument("--log-level", default=None)
    _operator_commands(sub)
    return ap


def _operator(sp: argparse.ArgumentParser, *, name: bool = True) -> argparse.ArgumentParser:
    sp.add_argument("--url", help="gateway URL (default: AIRFLOW__EDGEEXEC__URL)")
    sp.add_argument("--token", help="admin token (prefer AIRFLOW__EDGEEXEC__ADMIN_TOKEN)")
    sp.add_argument("--ca-file", help="CA bundle to verify a wss:// gateway (default: AIRFLOW__EDGEEXEC__CA_FILE)")
    if name:
        sp.add_argument("--name", help="the agent (default: this host's agent)")
    return sp


def _operator_commands(sub: Any) -> None:
    st = _operator(sub.add_parser("status", help="agents, state, queues, slots, metrics, running jobs"))
    st.add_argument("--watch", action="store_true", help="live view: a snapshot, then every change")
    st.add_argument("--json", action="store_true", help="one JSON object per agent / change")
    maint = sub.add_parser("maintenance", help="maintenance mode: finish running tasks, take no new ones")
    msub = maint.add_subparsers(dest="state", required=True)
    on = _operator(msub.add_parser("on", help="enter maintenance"))
    on.add_argument("-c", "--comments", default="", help="why, shown to other operators")
    on.add_argument("-w", "--wait", action="store_true", help="wait until the agent is in maintenance mode")
    off = _operator(msub.add_parser("off", help="leave maintenance"))
    off.add_argument("-w", "--wait", action="store_true", help="wait until the agent takes work again")
    stop = _operator(sub.add_parser("stop", help="drain the agent: finish running tasks, then exit"))
    stop.add_argument("-w", "--wait", action="store_true", help="wait until the agent has exited")
    for cmd, text in (("shutdown", "terminate running tasks and exit"),):
        sp = _operator(sub.add_parser(cmd, help=text))
        sp.add_argument("--all", action="store_true", help="every agent (asks for confirmation)")
        sp.add_argument("-y", "--yes", action="store_true", help="do not ask for confirmation")
    sq = _operator(sub.add_parser("set-queues", help="change the queues an agent serves"))
    sq.add_argument("queues", type=_queues)
    sc = _operator(sub.add_parser("set-concurrency", help="change an agent's slots"))
    sc.add_argument("concurrency", type=int)


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    console.setup_logging(getattr(args, "log_level", None) or ("WARNING" if args.command != "start" else None))
    try:
        return _operate(args) if args.command != "start" else _start(args)
    except ModuleNotFoundError as exc:
        return console.exit_code(exc, "agent", args.command)


def _start(args: argparse.Namespace) -> int:
    from agent.core import Agent
    from agent.settings import AgentSettings

    try:
        settings = AgentSettings.load(
            queues=args.queues, concurrency=args.concurrency, name=args.name, team=args.team, url=args.url,
            token=args.token,
            execution_api_url=args.execution_api_url, drain_timeout=args.drain_timeout,
            kill_grace=args.kill_grace, ca_file=args.ca_file, journal=args.journal,
        )
    except ConfigError as exc:
        print(f"agent: {exc}", file=sys.stderr)
        return 2
    return asyncio.run(Agent(settings).run())


def _local_socket(args: argparse.Namespace, admin_token: str) -> Path | None:
    """The local agent's control socket, when the command is for it: on the agent's own host and
    without --name (no token needed). Queue and concurrency changes re-register the agent and so
    go through the gateway; a status with an admin token shows the whole fleet."""
    from agent import operate
    from agent.local_control import socket_path

    if getattr(args, "name", None) or getattr(args, "all", False) or args.command in ("set-queues", "set-concurrency"):
        return None
    if args.command == "status" and admin_token:
        return None
    try:
        local = socket_path(operate.local_name())
    except OSError as exc:
        print(f"agent: no local control socket: {exc}", file=sys.stderr)
        return None
    return local if local.exists() else None


def _operate(args: argparse.Namespace) -> int:
    from websockets.exceptions import ConnectionClosed

    from agent import operate
    from agent.control_client import ControlClient
    from agent.errors import FatalConnectError
    from agent.local_control import LocalControlClient
    from edgeexec.config.settings import OperatorSettings

    try:
        settings = OperatorSettings.load(url=args.url, admin_token=args.token, ca_file=args.ca_file)
        local = _local_socket(args, settings.admin_token)
        if local is None:
            settings.require_admin()
    except ConfigError as exc:
        print(f"agent: {exc}", file=sys.stderr)
        return 2
    url, token, use_local = settings.url, settings.admin_token, local is not None
    local = local or Path("/nonexistent")

    async def go() -> int:
        client_cm: Any = (LocalControlClient(local, operate.local_name()) if use_local
                          else ControlClient(url, token, settings.ca_file))
        async with client_cm as client:
            if args.command == "status":
                return await operate.status(client, args)
            if args.command == "maintenance":
                action = f"maintenance_{args.state}"
                return await operate.command(client, args, action, comments=getattr(args, "comments", ""))
            if args.command == "stop":
                return await operate.command(client, args, "drain")
            if args.command == "set-queues":
                return await operate.command(client, args, "set_queues", queues=list(args.queues))
            if args.command == "set-concurrency":
                return await operate.command(client, args, "set_concurrency", concurrency=args.concurrency)
            return await operate.command(client, args, args.command)

    try:
        return asyncio.run(go())
    except FatalConnectError as exc:
        print(f"agent: {exc}", file=sys.stderr)
        return 2
    except (OSError, ConnectionError, ConnectionClosed) as exc:
        where = f"the local agent at {local}" if use_local else f"the gateway at {url}"
        print(f"agent: cannot reach {where}: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
