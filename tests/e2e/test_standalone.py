"""`edgeexec standalone` as a user runs it: it prints where Airflow is, and Ctrl-C stops everything."""

from __future__ import annotations

import re
import signal
import subprocess
import time
import urllib.request
from pathlib import Path

import psutil
import pytest

from edgeexec.localstack.processes import BIN

pytestmark = pytest.mark.e2e


def test_standalone_prints_the_ui_and_ctrl_c_stops_every_process(tmp_path: Path) -> None:
    """The UI URL answers; after SIGINT the command exits and nothing it started is left running."""
    home = tmp_path / "standalone"
    proc = subprocess.Popen([str(BIN / "edgeexec"), "standalone", "--home", str(home)], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        assert proc.stdout is not None
        lines = []
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            lines.append(line)
            if "Press Ctrl-C" in line or not line:
                break
        url = next(m.group(1) for ln in lines if (m := re.search(r"Airflow UI:\s+(\S+)", ln)))
        children = psutil.Process(proc.pid).children(recursive=True)
        assert len(children) >= 5, "redis, api-server, scheduler, dag-processor, gateway and an agent"
        with urllib.request.urlopen(f"{url}/api/v2/monitor/health", timeout=10) as r:
            assert r.status == 200
        proc.send_signal(signal.SIGINT)
        assert proc.wait(120) == 130
        _, alive = psutil.wait_procs(children, timeout=30)
        assert not alive, f"left running: {[p.cmdline() for p in alive]}"
    finally:
        if proc.poll() is None:
            proc.kill()
