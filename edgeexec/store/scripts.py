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


@cache
def source(name: str) -> str:
    """Prelude + script body, ready for EVAL/EVALSHA."""
    if name not in SCRIPT_NAMES:
        raise KeyError(f"unknown script {name!r}; known: {', '.join(SCRIPT_NAMES)}")
    lua = resources.files("edgeexec.store") / "lua"
    return (lua / "lib.lua").read_text() + "\n" + (lua / f"{name}.lua").read_text()
