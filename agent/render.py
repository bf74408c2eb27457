"""Tables for `agent status` (pure: records in, rich renderables out).

Every value in a record came from an agent (names, states, comments, metrics keys): it is shown
as plain text, never parsed as rich markup, and stripped of control characters, so a comment such
as ``disk [/dev/sdb] full`` shows as written and escape codes never reach the operator's terminal.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

from rich.table import Table
from rich.text import Text

_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def plain(value: object) -> Text:
    """Agent-supplied text, safe for a terminal: no markup, no control characters."""
    return Text(_CONTROL.sub("?", str(value)))

COLUMNS = ("agent", "state", "queues", "slots", "cpu %", "mem %", "disk %", "jobs", "comments")


def _pct(metrics: Mapping[str, float], name: str) -> str:
    v = metrics.get(name)
    return "-" if v is None or v < 0 else f"{v:.0f}"


def row(a: Mapping[str, Any]) -> tuple[str, ...]:
    m = a.get("metrics") or {}
    state = a["state"] if a.get("connected") else f"{a['state']} (disconnected)"
    return (a["name"], state, ",".join(a["queues"]), f"{a['used']}/{a['concurrency']}", _pct(m, "cpu_percent"),
            _pct(m, "memory_percent"), _pct(m, "disk_percent"), str(len(a.get("jobs") or [])), a.get("comments", ""))


def fleet_table(agents: Iterable[Mapping[str, Any]], queues: Mapping[str, Mapping[str, int]]) -> Table:
    table = Table(title="edgeexec agents", expand=False)
    for c in COLUMNS:
        table.add_column(c, no_wrap=c in ("agent", "state", "queues", "slots"))
    for a in sorted(agents, key=lambda x: x["name"]):
        table.add_row(*(plain(v) for v in row(a)))
    if queues:
        pending = ", ".join(f"{q}: {v['pending']} pending, {v['slots_used']}/{v['slots_total']} slots"
                            + (f", {v['too_big']} too big for every agent" if v.get("too_big") else "")
                            for q, v in sorted(queues.items()))
        table.caption = plain(pending)
    return table
