"""System metrics sent with every heartbeat (what an operator of remote sites wants first)."""

from __future__ import annotations

import os

import psutil


def snapshot(path: str = "/") -> dict[str, float]:
    mem = psutil.virtual_memory()
    try:
        disk = psutil.disk_usage(path).percent
    except OSError:
        disk = -1.0
    load1 = os.getloadavg()[0] if hasattr(os, "getloadavg") else -1.0
    return {
        "cpu_percent": psutil.cpu_percent(interval=None),
        "cpu_count": float(psutil.cpu_count() or 0),
        "memory_percent": mem.percent,
        "memory_available_mb": mem.available / 1048576,
        "disk_percent": disk,
        "load1": load1,
    }
