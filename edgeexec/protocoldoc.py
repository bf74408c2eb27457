"""Renders docs/protocol.md's frame and close-code tables from edgeexec/protocol.py (a test fails
when they drift), between ``<!-- NAME:begin -->`` and ``<!-- NAME:end -->`` markers.

    python -m edgeexec.protocoldoc docs/protocol.md
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable
from dataclasses import fields
from pathlib import Path

from edgeexec import protocol as p


def _summary(cls: type) -> str:
    doc = (cls.__doc__ or "").strip().split("\n\n")[0]
    return " ".join(doc.split())


def frame_table() -> str:
    rows = ["| type | direction | fields | meaning |", "|---|---|---|---|"]
    for kind, cls in p._FRAME_TYPES.items():
        direction = "agent → gateway" if kind in p.AGENT_FRAMES else "gateway → agent"
        names = ", ".join(f"`{f.name}`" for f in fields(cls))
        rows.append(f"| `{kind}` | {direction} | {names} | {_summary(cls)} |")
    return "\n".join(rows)


def close_code_table() -> str:
    rows = ["| code | name | meaning | agent behaviour |", "|---|---|---|---|"]
    for code, policy in sorted(p.CLOSE_POLICY.items()):
        then = "fatal: exits with code 2 and the message" if policy.fatal else "reconnects with backoff"
        rows.append(f"| {int(code)} | `{code.name}` | {policy.meaning} | {then} |")
    return "\n".join(rows)


def action_table() -> str:
    rows = ["| action | what it does | needs | over the local socket | for an offline agent |", "|---|---|---|---|---|"]
    for action, rule in p.ACTIONS.items():
        local = ("no: done by the gateway" if not rule.agent
                 else "no: re-registers, checked against the token" if rule.registers else "yes")
        offline = ("only then" if not rule.agent else "recorded, applied at reconnect" if rule.offline else "refused")
        rows.append(f"| `{action.value}` | {rule.summary} | {f'`{rule.needs}`' if rule.needs else ''} | {local} | {offline} |")
    return "\n".join(rows)


SECTIONS = {"frames": frame_table, "close-codes": close_code_table, "actions": action_table}


def _replacement(table: str) -> Callable[[re.Match[str]], str]:
    return lambda m: m.group(1) + table + "\n" + m.group(2)


def render(text: str) -> str:
    """``text`` with every generated section replaced by its current rendering."""
    for name, make in SECTIONS.items():
        pattern = re.compile(rf"(<!-- {name}:begin -->\n).*?(<!-- {name}:end -->)", re.S)
        if not pattern.search(text):
            raise ValueError(f"docs/protocol.md lacks the <!-- {name}:begin/end --> markers")
        text = pattern.sub(_replacement(make()), text)
    return text


if __name__ == "__main__":
    path = Path(sys.argv[1] if len(sys.argv) > 1 else "docs/protocol.md")
    path.write_text(render(path.read_text()))
