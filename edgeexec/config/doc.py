"""Renders docs/configuration.md from the settings classes (a test fails when the two drift).

    python -m edgeexec.config.doc > docs/configuration.md
"""

from __future__ import annotations

from typing import Any

from edgeexec.config.lookup import describe

HEADER = """# Configuration

Every option is read, in increasing precedence, from its default, Airflow's configuration
(`[edgeexec]` in `airflow.cfg`, for the executor), the environment variable shown, and the CLI flag
of the same name where there is one (`--redis-url` for `redis_url`).
This page is generated from the settings classes: `python -m edgeexec.config.doc > docs/configuration.md`.
edgeexec registers as an Airflow provider, so `airflow config list --section edgeexec
--include-descriptions` and `airflow config get-value edgeexec <option>` show the same `[edgeexec]`
options with these defaults (secrets are marked sensitive).
"""


def _section(title: str, intro: str, cls: type[Any], section: str = "edgeexec") -> str:
    lines = [f"## {title}", "", intro, "", "| option | environment variable | default | meaning |", "|---|---|---|---|"]
    for name, env, default, text in describe(cls, section):
        shown = "(host name)" if name == "name" else "(generated)" if name == "gateway_id" else f"`{default}`"
        lines.append(f"| `{name}` | `{env}` | {shown} | {text} |")
    return "\n".join(lines)


def render() -> str:
    from agent.settings import AgentSettings
    from batchexec.settings import BatchSettings
    from edgeexec.config.settings import ExecutorSettings, GatewaySettings, OperatorSettings

    parts = [
        HEADER,
        _section("Executor (`[edgeexec]`, in the scheduler)", "Read through Airflow's configuration.", ExecutorSettings),
        _section("Gateway (`edgeexec gateway`)", "Read from the environment and CLI flags.", GatewaySettings),
        _section("Agent (`agent start`)", "Read from the environment and CLI flags (`-q`, `-c`, `--name`, ...).",
                 AgentSettings),
        _section("Operator commands (`airflow edgeexec ...`, `agent status|maintenance|... --name`)",
                 "Read through Airflow's configuration (`airflow edgeexec`) or the environment and flags (`agent`).",
                 OperatorSettings),
        _section("AWS Batch executor (`[aws_batch_executor]`, in the scheduler)",
                 "Read through Airflow's configuration; see [batch.md](batch.md).", BatchSettings, "aws_batch_executor"),
    ]
    return "\n\n".join(parts) + "\n"


if __name__ == "__main__":
    print(render(), end="")
