"""``edgeexec`` command line: gateway, standalone (a whole local stack) and demo."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from edgeexec import console
from edgeexec.errors import ConfigError


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="edgeexec", description="edgeexec: push dispatch for Airflow 3")
    sub = ap.add_subparsers(dest="command", required=True)
    gw = sub.add_parser("gateway", help="run a gateway (agents connect here)")
    gw.add_argument("--host")
    gw.add_argument("--port", type=int)
    gw.add_argument("--redis-url")
    gw.add_argument("--redis-prefix")
    gw.add_argument("--team", help="the Airflow team whose agents this gateway serves (multi-team); default: none")
    gw.add_argument("--shared-secret", help="prefer AIRFLOW__EDGEEXEC__SHARED_SECRET: flags show in ps")
    gw.add_argument("--heartbeat-interval", type=float)
    gw.add_argument("--max-frame-bytes", type=int)
    gw.add_argument("--ssl-certfile", help="PEM certificate: serve wss:// (agents verify it, e.g. --ca-file)")
    gw.add_argument("--ssl-keyfile", help="PEM private key of --ssl-certfile")
    gw.add_argument("--log-level")
    tok = sub.add_parser("token", help="per-agent and admin tokens")
    tsub = tok.add_subparsers(dest="token_command", required=True)
    create = tsub.add_parser("create", help="create a token and print it once")
    create.add_argument("--agent", default="", help="the agent name this token admits (required unless --admin)")
    create.add_argument("-q", "--queues", default="", help="comma-separated queues the agent may serve")
    create.add_argument("--admin", action="store_true", help="a token for control clients (status, maintenance)")
    create.add_argument("--expires", help="lifetime, e.g. 30d, 12h (default: never)")
    tsub.add_parser("list", help="list tokens (never their secrets)").add_argument("--json", action="store_true")
    tsub.add_parser("revoke", help="revoke a token; a connected agent using it is dropped").add_argument("id")
    for tp in (tok, *tsub.choices.values()):
        # given before or after the subcommand; a copy on the subcommand must not reset the parent's value
        default = None if tp is tok else argparse.SUPPRESS
        tp.add_argument("--redis-url", default=default)
        tp.add_argument("--redis-prefix", default=default)
        tp.add_argument("--team", default=default,
                        help="the Airflow team whose tokens these are (multi-team); default: none")
    for name, text in (("standalone", "run Airflow + Redis + gateway + agent locally until Ctrl-C"),
                       ("demo", "run the example DAGs on a local stack, print a table, exit 0 iff all succeeded")):
        sp = sub.add_parser(name, help=text)
        sp.add_argument("--home", help="working directory for the stack (default: ./.demo)")
        sp.add_argument("--dags-folder", help="DAGs to serve (standalone default: your [core] dags_folder; "
                                              "demo default: the bundled examples)")
        sp.add_argument("--agent", action="append", default=[], metavar="NAME[:QUEUES[:CONCURRENCY]]",
                        help="an agent to start (repeatable), e.g. --agent site-2:other:4; default: demo-agent:default:8")
        if name == "demo":
            sp.add_argument("--dag", action="append", default=[], metavar="DAG_ID",
                            help="a DAG the demo runs (repeatable; required with --dags-folder)")
        sp.add_argument("--log-level")
    return ap


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    console.setup_logging(getattr(args, "log_level", None))
    try:
        if args.command == "gateway":
            return _gateway(args)
        if args.command == "token":
            from edgeexec.tokens.cli import run

            return run(args)
        from edgeexec.localstack.standalone import main as run_stack

        return run_stack(args.command, args.home, args.dags_folder, args.agent, getattr(args, "dag", []))
    except ConfigError as exc:
        print(f"edgeexec: {exc}", file=sys.stderr)
        return 2
    except ModuleNotFoundError as exc:
        return console.exit_code(exc, "edgeexec", args.command)


def _gateway(args: argparse.Namespace) -> int:
    from edgeexec.config.lookup import env_lookup, env_team
    from edgeexec.config.settings import SECTION, GatewaySettings
    from edgeexec.gateway.server import serve

    team = env_team(SECTION, args.team)
    settings = GatewaySettings.load(
        env_lookup(SECTION, team=team), host=args.host, port=args.port, redis_url=args.redis_url,
        redis_prefix=args.redis_prefix, team=team,
        shared_secret=args.shared_secret, heartbeat_interval=args.heartbeat_interval,
        max_frame_bytes=args.max_frame_bytes, ssl_certfile=args.ssl_certfile, ssl_keyfile=args.ssl_keyfile,
    )
    settings.require_secret()
    settings.require_tls_pair()
    serve(settings)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
