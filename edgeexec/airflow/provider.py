"""edgeexec as an Airflow provider: what ``airflow providers list``, ``airflow config list`` and the
``airflow edgeexec`` commands read (entry point group ``apache_airflow_provider``).

The plugin is not declared here: Airflow loads provider plugins only with ``[core]
lazy_discover_providers = False``, so it keeps its ``airflow.plugins`` entry point (declaring
both would register it twice). The ``[edgeexec]`` options are generated from the settings classes, so the provider's
configuration, ``docs/configuration.md`` and the code that reads the options cannot disagree.
Importing this module must stay cheap: Airflow calls it whenever it discovers providers.
"""

from __future__ import annotations

import dataclasses
from typing import Any, get_type_hints

from edgeexec import __version__
from edgeexec.config.settings import SECTION

PACKAGE = "edgeexec"
SENSITIVE = frozenset({"redis_url", "token", "admin_token", "shared_secret", "metrics_token"})
"""Options Airflow masks in ``airflow config list`` and may read from ``..._CMD`` / ``..._SECRET``
(a Redis URL can carry its password)."""
_TYPES = {str: "string", bool: "boolean", int: "integer", float: "float"}


def settings_classes() -> list[type[Any]]:
    """Every settings class read from ``[edgeexec]``, in the order their options are listed."""
    from agent.settings import AgentSettings
    from edgeexec.config.settings import ExecutorSettings, GatewaySettings, OperatorSettings

    return [ExecutorSettings, GatewaySettings, AgentSettings, OperatorSettings]


def _default(f: dataclasses.Field[Any]) -> str | None:
    """As Airflow's config holds it: a string, or None where the code computes it (host name, ids)."""
    if f.default is dataclasses.MISSING:
        return None
    value = f.default
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, tuple):
        return ",".join(value)
    return str(value)


def _option(f: dataclasses.Field[Any], kind: Any) -> dict[str, Any]:
    return {"description": f.metadata.get("doc", ""), "version_added": None,
            "type": _TYPES.get(kind, "string"), "example": None, "default": _default(f),
            **({"sensitive": True} if f.name in SENSITIVE else {})}


def config_options() -> dict[str, dict[str, Any]]:
    """``[edgeexec]``: one entry per option name (an option several components read is listed once)."""
    options: dict[str, dict[str, Any]] = {}
    for cls in settings_classes():
        hints = get_type_hints(cls)
        for f in dataclasses.fields(cls):
            options.setdefault(f.name, _option(f, hints[f.name]))
    return options


def get_provider_info() -> dict[str, Any]:
    return {
        "package-name": PACKAGE,
        "name": "edgeexec",
        "description": "Push dispatch of Airflow tasks to edge agents over WebSockets, and to AWS Batch.",
        "versions": [__version__],
        "executors": ["edgeexec.EdgeExecutor", "batchexec.BatchExecutor"],
        "cli": ["edgeexec.airflow.cli.get_cli_commands"],
        "config": {SECTION: {
            "description": "edgeexec: the executor (scheduler), the gateway, agents and operator commands. "
                           "Every option can also be set as AIRFLOW__EDGEEXEC__<OPTION>.",
            "options": config_options(),
        }},
    }
