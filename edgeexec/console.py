"""What every edgeexec command line shares: one log format, and which pip extra a command needs
(so a missing dependency is a one-line fix, not a traceback)."""

from __future__ import annotations

import logging
import os
import sys


def setup_logging(level: str | None = None) -> None:
    """One log format for every edgeexec process: one line per event, for operators."""
    logging.basicConfig(
        level=(level or os.environ.get("EDGEEXEC_LOG_LEVEL", "INFO")).upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )


EXTRA = {
    "gateway": "gateway", "token": "gateway", "standalone": "all", "demo": "all",
    "start": "agent", "status": "agent", "maintenance": "agent", "stop": "agent", "shutdown": "agent",
    "set-queues": "agent", "set-concurrency": "agent",
}


def missing(exc: ModuleNotFoundError, prog: str, command: str) -> str | None:
    """The message for a dependency of another extra, or None if the module is our own (a bug)."""
    top = (exc.name or "").split(".")[0]
    if not top or top in ("edgeexec", "agent", "batchexec"):
        return None
    extra = EXTRA.get(command, "all")
    return (f"{prog} {command}: Python module {top!r} is not installed; this command needs the "
            f"'{extra}' extra: pip install 'edgeexec[{extra}]'")


def exit_code(exc: ModuleNotFoundError, prog: str, command: str) -> int:
    """Print which extra to install and return the exit code; re-raise if the module is our own."""
    message = missing(exc, prog, command)
    if message is None:
        raise exc
    print(message, file=sys.stderr)
    return 2
