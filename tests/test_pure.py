"""Pure pieces: agent state table, reconnect policy, job mapping, settings, layering."""

from __future__ import annotations

import ast
import re
from pathlib import Path
from types import SimpleNamespace

import pytest
from starlette.websockets import WebSocket

from agent.reconnect import backoff_delay, close_code_is_fatal, http_status_is_fatal
from edgeexec import cli as edgeexec_cli
from edgeexec import states
from edgeexec.airflow import ui_page
from edgeexec.config.lookup import build, env_lookup
from edgeexec.config.settings import GatewaySettings
from edgeexec.dispatch import CALLBACK_PRIORITY, spec_for, ti_id_of
from edgeexec.errors import ConfigError
from edgeexec.gateway import page
from edgeexec.protocol import Action
from edgeexec.store.keys import Keys, keyspace

ROOT = Path(__file__).resolve().parent.parent


def test_state_table_matches_edge_provider_vocabulary() -> None:
    """Operators keep the Edge provider's state names and their derivation rules."""
    assert states.derive_agent_state(has_jobs=True, draining=True, maintenance=False) == "terminating"
    assert states.derive_agent_state(has_jobs=True, draining=False, maintenance=True) == "maintenance pending"
    assert states.derive_agent_state(has_jobs=False, draining=True, maintenance=True) == "offline maintenance"
    assert states.derive_agent_state(has_jobs=False, draining=True, maintenance=False) == "offline"
    assert states.derive_agent_state(has_jobs=False, draining=False, maintenance=True) == "maintenance mode"
    assert states.derive_agent_state(has_jobs=True, draining=False, maintenance=False) == "running"
    assert states.derive_agent_state(has_jobs=False, draining=False, maintenance=False) == "idle"
    assert len(states.AGENT_STATE_TABLE) == 8


def test_backoff_grows_is_capped_and_jittered() -> None:
    """A fleet reconnecting at once spreads out; the delay never exceeds the cap."""
    assert backoff_delay(0, 0.0) == 0.25
    assert backoff_delay(0, 0.999) < 0.5
    assert backoff_delay(3, 0.5) > backoff_delay(1, 0.5)
    assert backoff_delay(50, 0.999, cap=30) <= 30


def test_retry_classification() -> None:
    """Auth and bad-request refusals are fatal; overload and outages are retried."""
    assert http_status_is_fatal(401) and http_status_is_fatal(403)
    assert not http_status_is_fatal(503) and not http_status_is_fatal(429)
    assert close_code_is_fatal(4422) and not close_code_is_fatal(4409) and not close_code_is_fatal(1001)


def _task_workload(**ti: object) -> SimpleNamespace:
    base = dict(id="uuid-1", try_number=2, queue="remote", pool_slots=2, priority_weight=7, dag_id="d", task_id="t",
                run_id="r", map_index=-1)
    base.update(ti)
    return SimpleNamespace(ti=SimpleNamespace(**base), model_dump_json=lambda: '{"token": "t"}')


def test_task_workload_maps_to_spec() -> None:
    """Queue, pool_slots and priority_weight reach the job; the ref names ti id and try."""
    spec = spec_for(_task_workload(), "default")
    assert (spec.ref, spec.queue, spec.slots, spec.priority, spec.kind) == ("ti:uuid-1:2", "remote", 2, 7, "task")
    assert ti_id_of(spec.ref) == "uuid-1"
    assert spec_for(_task_workload(queue=None, pool_slots=0), "dflt").queue == "dflt"


def test_a_job_takes_the_id_airflow_pre_assigned() -> None:
    """With pre_assigns_external_executor_id the scheduler has stored the id before the submit, so
    the same queued try submitted again (a crash or a failed submit) is the same job."""
    pre = "0b5e6f1c-8d7a-4c3e-9f21-5a6b7c8d9e0f"
    first = spec_for(_task_workload(external_executor_id=pre), "default")
    again = spec_for(_task_workload(external_executor_id=pre), "default")
    assert first.job_id == again.job_id == pre.replace("-", "")
    assert spec_for(_task_workload(), "default").job_id != spec_for(_task_workload(), "default").job_id
    assert len(spec_for(_task_workload(external_executor_id="batch-job-7"), "default").job_id) == 32


def test_callback_workload_goes_first() -> None:
    """Callbacks finish work already started, so they outrank any task."""
    cb = SimpleNamespace(callback=SimpleNamespace(id="c1", data={}), model_dump_json=lambda: "{}")
    spec = spec_for(cb, "default")
    assert (spec.ref, spec.priority, spec.kind) == ("cb:c1", CALLBACK_PRIORITY, "callback")
    assert ti_id_of(spec.ref) is None


def test_settings_from_environment_and_errors_name_the_variable() -> None:
    """AIRFLOW__EDGEEXEC__* variables configure; a bad value names the variable to fix."""
    env = {"AIRFLOW__EDGEEXEC__PORT": "9000", "AIRFLOW__EDGEEXEC__SHARED_SECRET": "s",
           "AIRFLOW__EDGEEXEC__ALLOW_SHARED_SECRET": "yes"}
    s = build(GatewaySettings, "edgeexec", env_lookup("edgeexec", env), {"host": "0.0.0.0"})
    assert (s.port, s.host, s.shared_secret, s.allow_shared_secret, s.liveness) == (9000, "0.0.0.0", "s", True, 30.0)
    with pytest.raises(ConfigError, match="AIRFLOW__EDGEEXEC__PORT"):
        build(GatewaySettings, "edgeexec", env_lookup("edgeexec", {"AIRFLOW__EDGEEXEC__PORT": "x"}))
    with pytest.raises(ConfigError, match="AIRFLOW__EDGEEXEC__SHARED_SECRET"):
        GatewaySettings(allow_shared_secret=True).require_secret()
    with pytest.raises(ConfigError, match="AIRFLOW__EDGEEXEC__ALLOW_SHARED_SECRET=true"):
        GatewaySettings(shared_secret="s").require_secret()
    GatewaySettings().require_secret()  # tokens only: the production setup


PURE_MODULES = ["edgeexec/protocol.py", "edgeexec/dispatch.py", "edgeexec/store/keys.py", "edgeexec/states.py",
                "agent/reconnect.py", "agent/jobs.py", "edgeexec/store/scripts.py"]
IO_IMPORTS = {"asyncio", "socket", "redis", "starlette", "websockets", "boto3", "airflow", "uvicorn", "psutil",
              "subprocess", "os"}


@pytest.mark.parametrize("module", PURE_MODULES)
def test_core_modules_do_no_io(module: str) -> None:
    """The sans-I/O core imports no network, event-loop or Airflow module."""
    tree = ast.parse((ROOT / module).read_text())
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            imported.add(node.module.split(".")[0])
    assert not imported & IO_IMPORTS, f"{module} imports {imported & IO_IMPORTS}"


def test_importing_edgeexec_does_not_import_airflow() -> None:
    """Gateways and agents import edgeexec without paying for Airflow core."""
    import subprocess
    import sys

    code = "import sys, edgeexec, edgeexec.protocol, edgeexec.gateway; print('airflow' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_configuration_reference_matches_the_settings_classes() -> None:
    """docs/configuration.md is generated from the settings; regenerate it when an option changes."""
    from edgeexec.config.doc import render

    assert (ROOT / "docs" / "configuration.md").read_text() == render(), (
        "docs/configuration.md is stale: run `python -m edgeexec.config.doc > docs/configuration.md`")


def test_protocol_tables_match_the_code() -> None:
    """docs/protocol.md's frame and close-code tables are generated from protocol.py."""
    from edgeexec.protocoldoc import render

    text = (ROOT / "docs" / "protocol.md").read_text()
    assert text == render(text), "docs/protocol.md is stale: run `python -m edgeexec.protocoldoc docs/protocol.md`"


def test_every_close_code_has_one_policy_used_by_both_sides() -> None:
    """The agent's reconnect decision and the gateway's retry flag come from CLOSE_POLICY alone."""
    from agent.reconnect import close_code_is_fatal
    from edgeexec import protocol as p

    assert set(p.CLOSE_POLICY) == set(p.CloseCode)
    for code, policy in p.CLOSE_POLICY.items():
        assert close_code_is_fatal(int(code)) is policy.fatal


def test_every_command_that_does_not_re_register_can_be_waited_for_and_done_locally() -> None:
    """One table of operator commands (protocol.ACTIONS): the local socket offers exactly the ones
    that do not re-register the agent, and `--wait` knows when each of those is over."""
    from agent import local_control, operate
    from edgeexec import protocol as p

    assert set(operate.WAIT_DONE) == set(local_control.ACTIONS) == set(p.LOCAL_ACTIONS)
    assert {a for a, rule in p.ACTIONS.items() if rule.registers} == {p.Action.SET_QUEUES, p.Action.SET_CONCURRENCY}
    for action, rule in p.ACTIONS.items():
        if rule.needs:
            with pytest.raises(p.ProtocolError, match=rule.needs):
                p.Command.from_dict({"type": "command", "action": action.value})


def test_a_task_job_carries_a_label_people_can_read() -> None:
    spec = spec_for(_task_workload(dag_id="etl", task_id="load", run_id="manual__1", map_index=3), "default")
    assert spec.label == "etl.load[3] manual__1 try 2"
    assert spec_for(_task_workload(), "default").label == "d.t r try 2"


def _socket(headers: dict[str, str]) -> WebSocket:
    scope = {"type": "websocket", "path": "/edgeexec/ui/ws", "headers": [
        (k.lower().encode(), v.encode()) for k, v in headers.items()]}
    return WebSocket(scope, receive=None, send=None)  # type: ignore[arg-type]


def test_the_airflow_page_socket_takes_a_browser_session_only_from_airflows_origin() -> None:
    """Cross-site WebSocket hijacking: another site's page can open a socket to us and the
    browser attaches the Airflow cookie; only the Origin tells the two apart."""
    base = "https://airflow.example.com/"
    ours = _socket({"host": "airflow.internal:8080", "origin": "http://airflow.internal:8080"})
    proxied = _socket({"host": "10.0.0.5:8080", "origin": "https://airflow.example.com"})
    assert ui_page.same_origin(ours, base) and ui_page.same_origin(proxied, base)
    for origin in ("https://evil.example", "null", "", "https://airflow.example.com.evil.example"):
        assert not ui_page.same_origin(_socket({"host": "airflow.internal:8080", "origin": origin}), base), origin
    assert ui_page.credential(_socket({"cookie": "_token=abc; other=1"})) == ("abc", True)
    assert ui_page.credential(_socket({"authorization": "Bearer xyz", "cookie": "_token=abc"})) == ("xyz", False)
    assert ui_page.credential(_socket({})) == ("", True)


def test_only_airflows_own_pages_may_frame_the_fleet_page() -> None:
    inside = page.headers(framed=True)
    alone = page.headers(framed=False)
    assert "frame-ancestors 'self'" in inside["Content-Security-Policy"] and inside["X-Frame-Options"] == "SAMEORIGIN"
    assert "frame-ancestors 'none'" in alone["Content-Security-Policy"] and alone["X-Frame-Options"] == "DENY"


def test_every_command_the_page_sends_is_a_protocol_action() -> None:
    html = (Path(page.__file__).parent / "static" / "dashboard.html").read_text()
    sent = set(re.findall(r'(?:command\([^,]+|bulk\()\s*,?\s*"([a-z_]+)"', html))
    assert sent and sent <= {a.value for a in Action}, sent - {a.value for a in Action}
    assert {"maintenance_on", "maintenance_off", "drain", "shutdown", "set_queues", "set_concurrency", "remove"} <= sent


def test_a_team_is_a_keyspace_of_its_own() -> None:
    """Team names follow Airflow's rule and become a key prefix no team-less key can have."""
    assert keyspace("edgeexec", "") == "edgeexec"
    assert keyspace("edgeexec", "team_a") == "edgeexec:team:team_a"
    for bad in ("ab", "a b", "team:x", "x" * 51, "../x"):
        with pytest.raises(ValueError):
            keyspace("edgeexec", bad)
    keys = Keys("edgeexec")
    names = [getattr(keys, m)("x") if callable(getattr(keys, m)) else getattr(keys, m)
             for m in dir(keys) if not m.startswith("_") and m != "prefix"
             and (not callable(getattr(keys, m)) or getattr(keys, m).__code__.co_argcount == 2)]
    assert names and not any(n.startswith("edgeexec:team:") for n in names), names
    with pytest.raises(ConfigError, match="team"):
        GatewaySettings.load(lambda name: None, team="no spaces allowed")


def test_a_teams_environment_overrides_apply_to_gateways_and_clis() -> None:
    env = {"AIRFLOW__EDGEEXEC__REDIS_URL": "redis://global", "AIRFLOW__TEAM_B___EDGEEXEC__REDIS_URL": "redis://b",
           "AIRFLOW__EDGEEXEC__JOB_TTL": "600"}
    team_b, team_a = env_lookup("edgeexec", env, "team_b"), env_lookup("edgeexec", env, "team_a")
    assert (team_b("redis_url"), team_b("job_ttl"), team_a("redis_url")) == ("redis://b", "600", "redis://global")
    assert GatewaySettings.load(team_b, team="team_b").keys().prefix == "edgeexec:team:team_b"


@pytest.mark.parametrize("argv", [["token", "--team", "team_a", "list"], ["token", "list", "--team", "team_a"]])
def test_token_flags_count_before_and_after_the_subcommand(argv: list[str]) -> None:
    assert edgeexec_cli.parser().parse_args(argv).team == "team_a"
    assert edgeexec_cli.parser().parse_args(["token", "list"]).team is None
