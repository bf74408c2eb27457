"""``airflow edgeexec ...``: the provider's CLI group (declared in ``get_provider_info()["cli"]``).

Only the command table lives here, so ``airflow`` stays fast to start; the commands themselves
are in ``cli_commands`` and load when one runs. They speak to agents through a gateway's control
endpoint with an admin token, as ``agent status|maintenance|... --name`` does, and exit non-zero
when a command is refused or does not reach its agent.
"""

from __future__ import annotations

from typing import Any


def get_cli_commands() -> list[Any]:
    """The ``edgeexec`` group, named after the Edge provider's commands an operator already knows
    (see docs/migration.md); Airflow builds its parser from this on every ``airflow`` call."""
    from airflow.cli.cli_config import ARG_OUTPUT, ActionCommand, Arg, GroupCommand, lazy_load_command

    from edgeexec.states import AgentState

    def cmd(name: str) -> Any:
        return lazy_load_command(f"edgeexec.airflow.cli_commands.{name}")

    team = Arg(("--team",), help="the Airflow team whose agents these are (multi-team): its gateway, token and "
                                 "Redis come from its overrides, e.g. AIRFLOW__<TEAM>___EDGEEXEC__URL")
    gateway = (
        team,
        Arg(("--url",), help="gateway URL (default: \\[edgeexec] url / AIRFLOW__EDGEEXEC__URL)"),
        Arg(("--token",), help="admin token (default: \\[edgeexec] admin_token / AIRFLOW__EDGEEXEC__ADMIN_TOKEN)"),
        Arg(("--ca-file",), help="CA bundle to verify a wss:// gateway (default: \\[edgeexec] ca_file)"),
    )
    name = Arg(("name",), help="the agent's name")
    wait = Arg(("-w", "--wait"), action="store_true", help="wait until the agent reached the new state")
    comments = Arg(("-c", "--comments"), default="", help="why, shown to other operators")
    queues = Arg(("queues",), help="comma-separated queue names")
    yes = Arg(("-y", "--yes"), action="store_true", help="do not ask for confirmation")

    def act(command: str, help_text: str, func: str, *args: Any) -> Any:
        return ActionCommand(name=command, help=help_text, func=cmd(func), args=(*args, *gateway))

    maintenance = GroupCommand(name="maintenance", help="maintenance mode: finish running tasks, take no new ones",
                               subcommands=(
        act("on", "put an agent into maintenance (also while it is offline)", "maintenance_on", name, comments, wait),
        act("off", "take an agent out of maintenance", "maintenance_off", name, wait),
        act("comment", "change the comment of an agent in maintenance", "maintenance_comment", name, comments),
    ))
    tokens = GroupCommand(name="token", help="per-agent and admin tokens (in Redis: \\[edgeexec] redis_url)",
                          subcommands=(
        ActionCommand(name="create", help="create a token; it is printed once", func=cmd("token_create"), args=(
            Arg(("--agent",), default="", help="the agent name this token admits"),
            Arg(("-q", "--queues"), default="", help="comma-separated queues the agent may serve"),
            Arg(("--admin",), action="store_true", help="an admin token, for operator commands and dashboards"),
            Arg(("--expires",), default=None, help="lifetime, e.g. 90d, 12h; default: never"), team)),
        ActionCommand(name="list", help="token ids and scopes (never secrets)", func=cmd("token_list"),
                      args=(ARG_OUTPUT, team)),
        ActionCommand(name="revoke", help="revoke a token: its sessions end within seconds", func=cmd("token_revoke"),
                      args=(Arg(("id",), help="the token id (see `airflow edgeexec token list`)"), team)),
    ))
    return [GroupCommand(name="edgeexec", help="edgeexec agents, their queues and tokens", subcommands=(
        act("list-agents", "agents with state, queues, slots and running jobs", "list_agents",
            Arg(("--state",), nargs="+", choices=[s.value for s in AgentState], metavar="STATE",
                help=f"only agents in these states: {', '.join(repr(s.value) for s in AgentState)}"),
            Arg(("--queue",), help="only agents serving this queue"),
            Arg(("--name",), dest="name_pattern", help="only agents whose name matches this pattern (*, ?)"),
            ARG_OUTPUT),
        maintenance,
        act("drain", "finish running tasks, take no new ones, then exit", "drain", name, wait),
        act("shutdown", "terminate an agent's running tasks and stop it", "shutdown", name, wait),
        act("shutdown-all", "terminate running tasks on EVERY agent and stop them", "shutdown_all", yes),
        act("add-queues", "let an agent serve more queues (within its token's)", "add_queues", name, queues),
        act("remove-queues", "stop an agent serving some queues", "remove_queues", name, queues),
        act("set-concurrency", "change an agent's slots", "set_concurrency", name,
            Arg(("concurrency",), type=int, help="slots")),
        act("remove-agent", "forget an offline agent's record (not while it is connected or holds jobs)",
            "remove_agent", name),
        tokens,
    ))]
