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


def env_lookup(section: str, environ: Mapping[str, str] | None = None) -> Lookup:
    env = os.environ if environ is None else environ
    prefix = f"AIRFLOW__{section.upper()}__"
    return lambda name: env.get(prefix + name.upper())


def airflow_lookup(section: str) -> Lookup:
    """Airflow's own config (airflow.cfg plus AIRFLOW__SECTION__KEY variables)."""
    from airflow.configuration import conf

    def get(name: str) -> str | None:
        value = conf.get(section, name, fallback=None)
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
