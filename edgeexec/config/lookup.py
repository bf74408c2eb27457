"""Typed settings built from one lookup (environment, Airflow config or CLI flags).

Every settings class is a frozen dataclass whose fields carry their documentation in
``metadata["doc"]``; ``docs/configuration.md`` lists them with their defaults. A field named
``redis_url`` in section ``edgeexec`` is read from ``AIRFLOW__EDGEEXEC__REDIS_URL`` or, where
Airflow's configuration is used, from ``[edgeexec] redis_url``.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Mapping
from typing import Any, TypeVar, get_type_hints

from edgeexec.errors import ConfigError

T = TypeVar("T")
Lookup = Callable[[str], str | None]


def doc(text: str) -> dict[str, str]:
    """Field metadata carrying the option's documentation."""
    return {"doc": text}


def env_lookup(section: str, environ: Mapping[str, str] | None = None, team: str | None = None) -> Lookup:
    """``AIRFLOW__<SECTION>__<NAME>`` variables; with ``team``, that team's
    ``AIRFLOW__<TEAM>___<SECTION>__<NAME>`` first, as Airflow spells team overrides, so a gateway or
    CLI given Airflow's environment finds the same per-team values as the team's executor."""
    env = os.environ if environ is None else environ
    prefix = f"AIRFLOW__{section.upper()}__"
    team_prefix = f"AIRFLOW__{team.upper()}___{section.upper()}__" if team else ""

    def get(name: str) -> str | None:
        if team_prefix and (value := env.get(team_prefix + name.upper())) is not None:
            return value
        return env.get(prefix + name.upper())

    return get


def env_team(section: str, flag: str | None) -> str | None:
    """The team a process serves: its ``--team`` flag, else ``AIRFLOW__<SECTION>__TEAM``."""
    return flag if flag is not None else os.environ.get(f"AIRFLOW__{section.upper()}__TEAM")


def airflow_lookup(section: str, team: str | None = None) -> Lookup:
    """Airflow's own config (airflow.cfg plus AIRFLOW__SECTION__KEY variables); with ``team``, that
    team's overrides where it has them, spelled as Airflow defines them
    (``AIRFLOW__<TEAM>___<SECTION>__<KEY>`` with its _CMD/_SECRET forms, or a ``[<team>=<section>]``
    section), and the deployment's value for everything else. (Airflow's ``conf.get`` with a team
    falls back to the option's *default*, not to the deployment's setting: a team would silently
    lose the Redis every other component uses.)"""
    import configparser

    from airflow.configuration import conf

    def overridden(name: str) -> bool:
        env = f"AIRFLOW__{team.upper()}___{section.upper()}__{name.upper()}" if team else ""
        return bool(team) and (any(f"{env}{suffix}" in os.environ for suffix in ("", "_CMD", "_SECRET"))
                               or configparser.ConfigParser.has_option(conf, f"{team}={section}", name))

    def get(name: str) -> str | None:
        value = (conf.get(section, name, fallback=None, team_name=team) if overridden(name)
                 else conf.get(section, name, fallback=None))
        return None if value is None else str(value)

    return get


def _convert(raw: str, kind: Any, section: str, name: str) -> Any:
    try:
        if kind is bool:
            low = raw.strip().lower()
            if low not in {"1", "0", "true", "false", "yes", "no", "on", "off"}:
                raise ValueError(raw)
            return low in {"1", "true", "yes", "on"}
        if kind is int:
            return int(raw)
        if kind is float:
            return float(raw)
        if kind == tuple[str, ...]:
            return tuple(p.strip() for p in raw.split(",") if p.strip())
        return raw
    except ValueError:
        raise ConfigError(
            f"[{section}] {name} = {raw!r} is not a valid {getattr(kind, '__name__', kind)}; "
            f"set AIRFLOW__{section.upper()}__{name.upper()} to a valid value"
        ) from None


def build(cls: type[T], section: str, lookup: Lookup, overrides: Mapping[str, Any] | None = None) -> T:
    """Defaults < lookup < overrides (CLI flags); ``None`` overrides are ignored."""
    hints = get_type_hints(cls)
    values: dict[str, Any] = {}
    for f in dataclasses.fields(cls):  # type: ignore[arg-type]
        if overrides and overrides.get(f.name) is not None:
            values[f.name] = overrides[f.name]
            continue
        raw = lookup(f.name)
        if raw is not None and raw != "":
            kind = hints[f.name]
            kind = int if kind == (int | None) else float if kind == (float | None) else kind
            values[f.name] = _convert(raw, kind, section, f.name)
    return cls(**values)


def describe(cls: type[Any], section: str) -> list[tuple[str, str, str, str]]:
    """(option, environment variable, default, doc) rows for the configuration reference."""
    rows = []
    for f in dataclasses.fields(cls):
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()  # type: ignore[misc,operator]
        env = f"AIRFLOW__{section.upper()}__{f.name.upper()}"
        rows.append((f.name, env, repr(default), f.metadata.get("doc", "")))
    return rows
