"""The ``airflow edgeexec ...`` commands (table in ``edgeexec.airflow.cli``).

Agent commands go through a gateway's control endpoint with an admin token, the path the
``agent`` CLI's ``--name`` commands use: the gateway checks the token and the agent's own token
scope and hands the command to the gateway holding the agent's session; ``--wait`` then follows
the agent's record until it reached the new state (and fails if the agent goes offline first).
A refusal, an unknown agent or an undeliverable command exits non-zero with the gateway's reason.
Token commands write Redis directly, as ``edgeexec token`` does. Settings come
from Airflow's configuration (``[edgeexec]``), so they work on any host with the scheduler's
``airflow.cfg``; flags override them.
"""

from __future__ import annotations

import argparse
import asyncio
import fnmatch
import sys
from collections.abc import Awaitable, Callable
from typing import Any, NoReturn

import orjson

from edgeexec import protocol as p
from edgeexec.config.lookup import airflow_lookup
from edgeexec.config.settings import SECTION, OperatorSettings, StoreSettings
from edgeexec.errors import ConfigError

Record = dict[str, Any]


def _fail(message: str, code: int = 1) -> NoReturn:
    print(f"airflow edgeexec: {message}", file=sys.stderr)
    raise SystemExit(code)


def _settings(args: argparse.Namespace) -> OperatorSettings:
    try:
        p.validate_team_name(getattr(args, "team", None) or "")
        settings = OperatorSettings.load(airflow_lookup(SECTION, getattr(args, "team", None)), url=getattr(args, "url", None),
                                         admin_token=getattr(args, "token", None), ca_file=getattr(args, "ca_file", None))
        settings.require_admin()
    except (ConfigError, p.ProtocolError) as exc:
        _fail(str(exc), 2)
    return settings


def _run(args: argparse.Namespace, body: Callable[[Any], Awaitable[int]]) -> None:
    """Open a control session, run ``body`` on it, exit with its code (non-zero on any failure)."""
    from websockets.exceptions import ConnectionClosed

    from agent.control_client import ControlClient
    from agent.errors import FatalConnectError

    settings = _settings(args)

    async def go() -> int:
        async with ControlClient(settings.url, settings.admin_token, settings.ca_file) as client:
            await _same_team(client, getattr(args, "team", None) or "", settings.url)
            return await body(client)

    try:
        code = asyncio.run(go())
    except FatalConnectError as exc:
        _fail(str(exc), 2)
    except (OSError, ConnectionError, ConnectionClosed) as exc:
        _fail(f"cannot reach the gateway at {settings.url}: {exc}")
    if code:
        raise SystemExit(code)


async def _same_team(client: Any, team: str, url: str) -> None:
    """Commands go to the fleet the operator named: a gateway says whose fleet it serves, and an
    agent name may exist in several teams' fleets."""
    first = await anext(client.stream())
    serves = str(first.get("operator", {}).get("team", ""))
    if serves != team:
        _fail(f"the gateway at {url} serves {f'team {serves!r}' if serves else 'no team'}, not "
              f"{f'team {team!r}' if team else 'the team-less fleet'}: "
              + (f"set AIRFLOW__{team.upper()}___EDGEEXEC__URL and ..._ADMIN_TOKEN to team {team}'s gateway"
                 if team else f"pass --team {serves}"), 2)


async def _agents(client: Any) -> list[Record]:
    first = await anext(client.stream())
    agents: list[Record] = first["agents"]
    return agents


async def _agent(client: Any, name: str) -> Record:
    for a in await _agents(client):
        if a["name"] == name:
            return a
    _fail(f"no agent named {name!r} is known (see `airflow edgeexec list-agents`)")


def _valid_name(args: argparse.Namespace) -> None:
    if getattr(args, "name", None) is not None:
        try:
            p.validate_agent_name(args.name)
        except p.ProtocolError as exc:
            _fail(str(exc), 2)


def _command(args: argparse.Namespace, action: str, **fields: Any) -> None:
    from agent import operate

    _valid_name(args)
    args.all = getattr(args, "all", False)
    args.yes = getattr(args, "yes", False)
    _run(args, lambda client: operate.command(client, args, action, **fields))


# ------------------------------------------------------------------------------------ listing


def select(agents: list[Record], states: list[str] | None, queue: str | None, pattern: str | None) -> list[Record]:
    """The agents matching every filter given, by name."""
    return sorted((a for a in agents
                   if (not states or a["state"] in states) and (not queue or queue in (a.get("queues") or []))
                   and (not pattern or fnmatch.fnmatchcase(a["name"], pattern))), key=lambda a: str(a["name"]))


def _print(rows: list[Record], output: str) -> None:
    """json and yaml keep the records' types (Airflow's console would turn every value into a string)."""
    if output == "json":
        print(orjson.dumps(rows).decode())
    elif output == "yaml":
        import yaml

        print(yaml.safe_dump(rows, sort_keys=False), end="")
    else:
        from airflow.cli.simple_table import AirflowConsole

        AirflowConsole().print_as(data=rows, output=output)


def _print_agents(agents: list[Record], output: str) -> None:
    """Tables through the agent CLI's renderer: every value came from an agent, so it is shown
    as plain text (no rich markup, no control characters), which Airflow's console would not do."""
    from rich.console import Console

    from agent.render import fleet_table, plain, row

    if output == "table":
        Console(width=None if sys.stdout.isatty() else 200).print(fleet_table(agents, {}))
    else:
        for a in agents:
            print("\t".join(plain(v).plain for v in row(a)))


def list_agents(args: argparse.Namespace) -> None:
    async def body(client: Any) -> int:
        chosen = select(await _agents(client), args.state, args.queue, args.name_pattern)
        if args.output in ("json", "yaml"):
            _print(chosen, args.output)
        else:
            _print_agents(chosen, args.output)
        return 0

    _run(args, body)


# ------------------------------------------------------------------------------------ commands


def maintenance_on(args: argparse.Namespace) -> None:
    _command(args, p.Action.MAINTENANCE_ON, comments=args.comments)


def maintenance_off(args: argparse.Namespace) -> None:
    _command(args, p.Action.MAINTENANCE_OFF)


def maintenance_comment(args: argparse.Namespace) -> None:
    """Only for an agent already in maintenance: a new comment must not start a maintenance."""
    from agent import operate

    async def body(client: Any) -> int:
        a = await _agent(client, args.name)
        if not a["maintenance"]:
            _fail(f"agent {args.name!r} is not in maintenance ({a['state']}); "
                  f"use `airflow edgeexec maintenance on {args.name} -c ...`")
        return await operate.command(client, args, p.Action.MAINTENANCE_ON, comments=args.comments)

    args.all, args.yes, args.wait = False, False, False
    _valid_name(args)
    _run(args, body)


def drain(args: argparse.Namespace) -> None:
    _command(args, p.Action.DRAIN)


def shutdown(args: argparse.Namespace) -> None:
    _command(args, p.Action.SHUTDOWN)


def shutdown_all(args: argparse.Namespace) -> None:
    args.all, args.name, args.wait = True, None, False
    _command(args, p.Action.SHUTDOWN)


def _queue_list(text: str) -> list[str]:
    queues = [q.strip() for q in text.split(",") if q.strip()]
    if not queues:
        _fail("name at least one queue, e.g. `a,b`", 2)
    return queues


def _set_queues(args: argparse.Namespace, change: Callable[[list[str]], list[str]]) -> None:
    from agent import operate

    async def body(client: Any) -> int:
        current = list((await _agent(client, args.name)).get("queues") or [])
        new = change(current)
        if not new:
            _fail(f"agent {args.name!r} would serve no queue; it serves {','.join(current)}", 2)
        if new == current:
            print(f"agent {args.name!r} already serves {','.join(current)}")
            return 0
        return await operate.command(client, args, p.Action.SET_QUEUES, queues=new)

    args.all, args.yes, args.wait = False, False, False
    _valid_name(args)
    _run(args, body)


def add_queues(args: argparse.Namespace) -> None:
    extra = _queue_list(args.queues)
    _set_queues(args, lambda cur: cur + [q for q in extra if q not in cur])


def remove_queues(args: argparse.Namespace) -> None:
    gone = set(_queue_list(args.queues))
    _set_queues(args, lambda cur: [q for q in cur if q not in gone])


def set_concurrency(args: argparse.Namespace) -> None:
    _command(args, p.Action.SET_CONCURRENCY, concurrency=args.concurrency)


def remove_agent(args: argparse.Namespace) -> None:
    """The gateway removes the record itself; an agent that is still there refuses to be forgotten."""
    _command(args, p.Action.REMOVE)


# ------------------------------------------------------------------------------------ tokens


def _token_store(args: argparse.Namespace) -> tuple[Any, Any]:
    """The scheduler's Redis and keyspace, from ``[edgeexec]`` (with ``--team``, that team's)."""
    from edgeexec.config.lookup import build
    from edgeexec.store.redis_url import connect

    team = getattr(args, "team", None)
    try:
        p.validate_team_name(team or "")
        settings = build(StoreSettings, SECTION, airflow_lookup(SECTION, team), {"team": team or ""})
    except (ConfigError, p.ProtocolError) as exc:
        _fail(str(exc), 2)
    return connect(settings.redis_url, decode_responses=True), settings.keys()


def token_create(args: argparse.Namespace) -> None:
    from edgeexec.tokens import cli as tokens_cli

    client, keys = _token_store(args)
    try:
        code = tokens_cli.create(client, keys, args)
    except ConfigError as exc:
        _fail(str(exc), 2)
    if code:
        raise SystemExit(code)


def token_list(args: argparse.Namespace) -> None:
    from edgeexec.tokens import cli as tokens_cli

    client, keys = _token_store(args)
    _print(tokens_cli.rows(client, keys), args.output)


def token_revoke(args: argparse.Namespace) -> None:
    from edgeexec.tokens import cli as tokens_cli

    client, keys = _token_store(args)
    if tokens_cli.revoke(client, keys, args.id):
        raise SystemExit(1)
