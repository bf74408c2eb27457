"""Signal a job's whole process tree: the supervisor, the task runner and anything it spawned."""

from __future__ import annotations

import logging
import signal

import psutil

log = logging.getLogger(__name__)


def kill_tree(pid: int, sig: int = signal.SIGTERM, *, include_root: bool = True) -> int:
    """Send ``sig`` to ``pid``'s descendants (children first) and to ``pid``; returns how many got it.

    The task runner lives in its own process group, so a group signal would miss it: walk the tree.
    """
    try:
        root = psutil.Process(pid)
        procs = root.children(recursive=True)
    except psutil.NoSuchProcess:
        return 0
    if include_root:
        procs.append(root)
    sent = 0
    for proc in procs:
        try:
            proc.send_signal(sig)
            sent += 1
        except psutil.NoSuchProcess:
            continue
        except psutil.AccessDenied:
            log.warning("not allowed to signal pid %d of job tree %d", proc.pid, pid)
    return sent
