"""A real AWS Batch API endpoint (moto's server) with a stand-in compute environment.

Run as its own process (`python -m tests.batch_standin --port P --control-port C`) and stopped by
PID. Docker is not available here, so instead of starting a container for each job, the stand-in
runs the job's container command as a local process and drives the job through moto's real
statuses: SUBMITTED -> PENDING -> RUNNABLE -> STARTING -> RUNNING -> SUCCEEDED/FAILED by exit code.
Two knobs in a job's environment stand for what a container image would do:
STANDIN_COMMAND (a JSON list) runs instead of the command, STANDIN_FAIL_BEFORE_START=1 fails
the job without ever starting it (as when a host is lost), STANDIN_STAY_RUNNABLE=1 leaves it
RUNNABLE until it is terminated (no compute to place it), and STANDIN_OOM=1 kills the container
as the OOM killer does (SIGKILL, exit 137, Batch's container reason).
The control port answers GET /counts with the number of API calls per action, counted at the
endpoint, and POST /faults with a JSON list of rules replaces the faults injected at the HTTP
endpoint (for what moto does not do: throttling, errors tied to one job, malformed answers):
{"action": "submitjob", "match": "text in the request body", "status": 429,
 "code": "TooManyRequestsException", "body": "raw answer instead of an error", "times": 3}.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import threading
import time
from collections import Counter
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from moto.batch import models
from moto.moto_server.threaded_moto_server import MotoRequestHandler
from moto.server import DomainDispatcherApplication, create_backend_app
from werkzeug.serving import make_server

COUNTS: Counter[str] = Counter()
FAULTS: list[dict[str, Any]] = []
_LOCK = threading.Lock()
OOM_REASON = "OutOfMemoryError: Container killed due to memory usage"


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
    if env.get("STANDIN_STAY_RUNNABLE") == "1":
        while not self.stop:
            time.sleep(0.1)
        self.job_stopped, self.job_stopped_at, self.status = True, datetime.now(), "FAILED"
        return
    self.status = "STARTING"
    self.job_started_at = datetime.now()
    self._start_attempt()
    self.status = "RUNNING"
    proc = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            start_new_session=True)  # a container: its processes die together
    shipper = threading.Thread(target=_ship_logs, args=(self, proc), daemon=True)
    shipper.start()
    if env.get("STANDIN_OOM") == "1":
        time.sleep(0.5)
        os.killpg(proc.pid, signal.SIGKILL)
        self.standin_reason = OOM_REASON  # type: ignore[attr-defined]
    while proc.poll() is None:
        if self.stop:
            proc.terminate()
        time.sleep(0.1)
    shipper.join(timeout=10)
    self.exit_code = 137 if getattr(self, "standin_reason", "") == OOM_REASON else proc.returncode
    if self.latest_attempt is not None:
        self.latest_attempt["container"]["exitCode"] = self.exit_code
        if getattr(self, "standin_reason", ""):
            self.latest_attempt["container"]["reason"] = self.standin_reason  # type: ignore[attr-defined]
    if self.stop and not self.job_stopped_reason:
        self.job_stopped_reason = "Terminated"
    self._mark_stopped(success=proc.returncode == 0 and not self.stop)


def _ship_logs(job: models.Job, proc: subprocess.Popen[bytes]) -> None:
    """What Batch's awslogs driver does: each line the container writes, to its CloudWatch Logs
    stream as it comes (and to this process's own output, for the test's log)."""
    job.log_stream_name = job._stream_name
    job._log_backend.ensure_log_group(job._log_group)
    job._log_backend.ensure_log_stream(job._log_group, job.log_stream_name)
    assert proc.stdout is not None
    for raw in proc.stdout:
        line = raw.decode(errors="replace").rstrip("\n")
        print(line, flush=True)
        job._log_backend.put_log_events(job._log_group, job.log_stream_name,
                                        [{"timestamp": int(time.time() * 1000), "message": line}])


def _fault_for(action: str, body: str) -> dict[str, Any] | None:
    """The first rule for this action whose text is in the body and has uses left (times < 0: always)."""
    with _LOCK:
        for rule in FAULTS:
            times = rule.get("times", -1)
            if rule.get("action", "").lower() == action and rule.get("match", "") in body and times != 0:
                rule["times"] = times - 1 if times > 0 else times
                return rule
    return None


class FaultInjector:
    """WSGI middleware in front of moto: answers a matching request itself, as AWS would."""

    def __init__(self, app: Any) -> None:
        self.app = app

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        action = str(environ.get("PATH_INFO", "")).rstrip("/").rsplit("/", 1)[-1].lower()
        size = int(environ.get("CONTENT_LENGTH") or 0)
        raw = environ["wsgi.input"].read(size) if size else b""
        rule = _fault_for(action, raw.decode(errors="replace"))
        if rule is None:
            import io

            environ["wsgi.input"] = io.BytesIO(raw)
            return self.app(environ, start_response)
        with _LOCK:
            COUNTS[f"fault:{action}"] += 1
        if "body" in rule:
            start_response("200 OK", [("Content-Type", "application/json")])
            return [str(rule["body"]).encode()]
        status = int(rule.get("status", 400))
        payload = json.dumps({"__type": rule.get("code", "ClientException"), "message": rule.get("message", "injected")})
        start_response(f"{status} Injected", [("Content-Type", "application/json"),
                                              ("x-amzn-ErrorType", str(rule.get("code", "ClientException")))])
        return [payload.encode()]


def _container_details(self: models.Job, original: Any = models.Job._container_details) -> dict[str, Any]:
    details: dict[str, Any] = original(self)
    if getattr(self, "standin_reason", ""):
        details["reason"] = self.standin_reason  # type: ignore[attr-defined]
    if self.exit_code is not None:
        details["exitCode"] = self.exit_code
    return details


class _Control(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        with _LOCK:
            body = json.dumps(dict(COUNTS)).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self) -> None:
        rules = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"[]")
        with _LOCK:
            FAULTS[:] = rules
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        return


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--control-port", type=int, required=True)
    args = ap.parse_args()
    models.Job.run = _run_locally  # type: ignore[method-assign]
    models.Job._container_details = _container_details  # type: ignore[method-assign]
    for action in ("submit_job", "describe_jobs", "terminate_job"):
        setattr(models.BatchBackend, action, _count(action, getattr(models.BatchBackend, action)))
    app = FaultInjector(DomainDispatcherApplication(create_backend_app))
    server = make_server("127.0.0.1", args.port, app, True, request_handler=MotoRequestHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    ThreadingHTTPServer(("127.0.0.1", args.control_port), _Control).serve_forever()


if __name__ == "__main__":
    main()
