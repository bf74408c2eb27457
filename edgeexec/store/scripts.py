"""Loads the Lua scripts shipped in edgeexec/lua, each with the shared prelude (lib.lua) prepended.

The scripts are the only code that changes slot accounting or job state, so every change is atomic
in Redis no matter how many gateways and schedulers run at once.
"""

from __future__ import annotations

from functools import cache
from importlib import resources

SCRIPT_NAMES = (
    "submit", "accept", "reject", "finish", "heartbeat", "register", "disconnect",
    "reap", "cancel", "adopt", "oversized",
)


def script_text(name: str) -> str:
    """The text of one file in edgeexec/store/lua (``lib`` for the prelude), as shipped."""
    if name not in (*SCRIPT_NAMES, "lib"):
        raise KeyError(f"unknown script {name!r}; known: {', '.join(SCRIPT_NAMES)}")
    return (resources.files("edgeexec.store") / "lua" / f"{name}.lua").read_text()


@cache
def source(name: str) -> str:
    """Prelude + script body, ready for EVAL/EVALSHA."""
    if name not in SCRIPT_NAMES:
        raise KeyError(f"unknown script {name!r}; known: {', '.join(SCRIPT_NAMES)}")
    return script_text("lib") + "\n" + script_text(name)
