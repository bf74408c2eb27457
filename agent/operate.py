"""Operator commands of the `agent` CLI: status, maintenance, stop, shutdown, set-queues, set-concurrency.

On the agent's own host and without ``--name``, status, maintenance, stop and shutdown talk to
the local agent over its control socket (no token needed); with ``--name``/``--all``, from an
operator's machine, and for set-queues/set-concurrency (which re-register the agent), they go
through the gateway's control endpoint with an admin token. Both answer in the same shapes, so
the output is the same either way.
"""

from __future__ import annotations

import argparse
import socket
import sys
from collections.abc import AsyncIterator, Callable
from typing import Any

import orjson
from rich.console import Console
from rich.live import Live

from agent.control_client import ControlClient
from agent.render import fleet_table
from edgeexec import protocol as p
from edgeexec.states import AgentState

Record = dict[str, Any]


def _in_maintenance(a: Record) -> bool:
    return a["state"] in (AgentState.MAINTENANCE_MODE, AgentState.OFFLINE_MAINTENANCE)


def _working(a: Record) -> bool:
    return a["state"] in p.ACCEPTING_STATES


def _gone(a: Record) -> bool:
    return not a["connected"]


WAIT_DONE: dict[str, Callable[[Record], bool]] = {
    p.Action.MAINTENANCE_ON: _in_maintenance, p.Action.MAINTENANCE_OFF: _working,
    p.Action.DRAIN: _gone, p.Action.SHUTDOWN: _gone,
}
"""When ``--wait`` is over, for each command that does not re-register the agent."""


def local_name() -> str:
    import os

    return os.environ.get("AIRFLOW__EDGEEXEC__NAME") or socket.gethostname()


async def status(client: ControlClient, args: argparse.Namespace) -> int:
    stream = client.stream()
    first = await anext(stream)
    agents = {a["name"]: a for a in first["agents"] if not args.name or a["name"] == args.name}
    if args.name and not agents:
        print(f"agent: no agent named {args.name!r} is known", file=sys.stderr)
        return 1
    if args.json:
        for a in agents.values():
            _json(p.agent_delta(a))
        _json(p.queues_delta(first["queues"]))
    elif not args.watch:
        Console(width=None if sys.stdout.isatty() else 200).print(fleet_table(agents.values(), first["queues"]))
    if args.watch:
        await _follow(stream, agents, first["queues"], args)
    return 0


def _json(msg: dict[str, Any]) -> None:
    print(orjson.dumps(msg).decode(), flush=True)


async def _follow(stream: AsyncIterator[dict[str, Any]], agents: dict[str, dict[str, Any]],
                  queues: dict[str, Any], args: argparse.Namespace) -> None:
    """Apply deltas as they arrive: redraw the table in place, or print one JSON object each."""
    live = None if args.json else Live(fleet_table(agents.values(), queues), auto_refresh=False)
    if live:
        live.start()
    try:
        async for msg in stream:
            if msg.get("type") == "agent" and (not args.name or msg["agent"]["name"] == args.name):
                agents[msg["agent"]["name"]] = msg["agent"]
            elif msg.get("type") == "removed" and msg["agent"] in agents:
                del agents[msg["agent"]]
            elif msg.get("type") == "queues":
                queues = msg["queues"]
            else:
                continue
            if live:
                live.update(fleet_table(agents.values(), queues), refresh=True)
            else:
                _json(msg)
    finally:
        if live:
            live.stop()


async def command(client: ControlClient, args: argparse.Namespace, action: str, **fields: Any) -> int:
    target = "*" if getattr(args, "all", False) else (args.name or local_name())
    if target == "*" and not args.yes:
        try:
            answer = input(f"{action.replace('_', ' ')} EVERY agent? type 'yes' to confirm: ")
        except EOFError:  # no terminal to ask (a script): not a yes
            answer = ""
        if answer.strip().lower() != "yes":
            print("cancelled", file=sys.stderr)
            return 1
    ok, message = await client.command(target, action, **fields)
    print(message, file=sys.stdout if ok else sys.stderr, flush=True)
    if not ok:
        return 1
    if getattr(args, "wait", False) and target != "*" and "offline" not in message:
        return await _wait(client, target, action)
    return 0


async def _wait(client: ControlClient, name: str, action: str) -> int:
    done = WAIT_DONE[action]
    last = ""
    async for msg in client.stream():
        if msg.get("type") == "removed" and msg.get("agent") == name:
            print(f"{name} was removed by an operator", file=sys.stderr, flush=True)
            return 1
        recs = (msg.get("agents", []) if msg.get("type") == "snapshot"
                else [msg["agent"]] if msg.get("type") == "agent" else [])
        for a in recs:
            if not a or a["name"] != name:
                continue
            line = f"{name}: {a['state']}, {len(a.get('jobs') or [])} job(s) running"
            if line != last:
                print(line, flush=True)
                last = line
            if done(a):
                return 0
            if not a["connected"]:
                print(f"{name} went offline before it was {action.replace('_', ' ')}", file=sys.stderr, flush=True)
                return 1
    return 1
