"""A real AWS Batch API endpoint (moto's server) with a stand-in compute environment.

Run as its own process (`python -m tests.batch_standin --port P --control-port C`) and stopped by
PID. Docker is not available here, so instead of starting a container for each job, the stand-in
runs the job's container command as a local process and drives the job through moto's real
statuses: SUBMITTED -> PENDING -> RUNNABLE -> STARTING -> RUNNING -> SUCCEEDED/FAILED by exit code.
Two knobs in a job's environment stand for what a container image would do:
STANDIN_COMMAND (a JSON list) runs instead of the command, and STANDIN_FAIL_BEFORE_START=1 fails
the job without ever starting it (as when a host is lost), to exercise resubmission.
The control port answers GET /counts with the number of API
calls per action, counted at the endpoint.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import threading
import time
from collections import Counter
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from moto.batch import models
from moto.server import ThreadedMotoServer

COUNTS: Counter[str] = Counter()
_LOCK = threading.Lock()


def _count(name: str, fn: Any) -> Any:
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with _LOCK:
            COUNTS[name] += 1
        return fn(*args, **kwargs)

    return wrapper


def _env(job: models.Job) -> dict[str, str]:
    """The job definition's environment, then the submission's overrides (as Batch merges them)."""
    env = dict(os.environ)
    defined = (job.job_definition.container_properties or {}).get("environment", [])
    for item in [*defined, *job.container_overrides.get("environment", [])]:
        env[item["name"]] = item["value"]
    return env


def _run_locally(self: models.Job) -> None:
    """Replaces moto's Docker runner: the job's command runs here, its exit code decides the status."""
    env = _env(self)
    command = json.loads(env["STANDIN_COMMAND"]) if "STANDIN_COMMAND" in env else \
        self._get_container_property("command", [])
    self.status = "PENDING"
    self.status = "RUNNABLE"
    time.sleep(0.2)
    if env.get("STANDIN_FAIL_BEFORE_START") == "1":
        self.job_stopped_reason = "Host EC2 instance terminated before the container started"
        self.job_stopped, self.job_stopped_at, self.status = True, datetime.now(), "FAILED"
        return
    self.status = "STARTING"
    self.job_started_at = datetime.now()
    self._start_attempt()
    self.status = "RUNNING"
    proc = subprocess.Popen(command, env=env)
    while proc.poll() is None:
        if self.stop:
            proc.terminate()
        time.sleep(0.1)
    self.exit_code = proc.returncode
    if self.latest_attempt is not None:
        self.latest_attempt["container"]["exitCode"] = proc.returncode
    if self.stop and not self.job_stopped_reason:
        self.job_stopped_reason = "Terminated"
    self._mark_stopped(success=proc.returncode == 0 and not self.stop)


class _Control(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        with _LOCK:
            body = json.dumps(dict(COUNTS)).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        return


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--control-port", type=int, required=True)
    args = ap.parse_args()
    models.Job.run = _run_locally  # type: ignore[method-assign]
    for action in ("submit_job", "describe_jobs", "terminate_job"):
        setattr(models.BatchBackend, action, _count(action, getattr(models.BatchBackend, action)))
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=args.port, verbose=False)
    server.start()
    ThreadingHTTPServer(("127.0.0.1", args.control_port), _Control).serve_forever()


if __name__ == "__main__":
    main()
