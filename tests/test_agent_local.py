"""What a local user and an operator's terminal see of an agent: the control socket's directory,
the status table, and the environment tasks inherit."""

from __future__ import annotations

import asyncio
import io
import os
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from agent import local_control
from agent.render import fleet_table
from agent.settings import scrub_secrets
from edgeexec.gateway.status import display_state


@pytest.mark.parametrize("how", ["shared-mode", "other-owner"])
def test_a_control_directory_another_user_could_use_is_refused(tmp_path: Path, how: str,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """A directory others can write to, or one another user pre-created, is never used: the agent
    runs without its local socket (logged) instead of crash-looping or listening where others can."""
    d = tmp_path / "run"
    d.mkdir(mode=0o700)
    if how == "shared-mode":
        d.chmod(0o777)
    else:
        os.chown(d, 65534, 65534)  # to nobody, as another local user would own it (CI runs as root)
    monkeypatch.delenv("RUNTIME_DIRECTORY", raising=False)
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(d))
    with pytest.raises(OSError, match="not a private directory"):
        local_control.socket_dir(systemd_dir=tmp_path / "absent")

    class Idle:
        def record(self) -> dict[str, Any]:
            return {}

        def operator(self, action: str, comments: str) -> None:
            return None

    server = local_control.LocalControlServer(Idle(), "a1")
    asyncio.run(server.start())  # logs the refusal, does not raise
    assert server.server is None and not list(d.iterdir())


def test_the_private_fallback_directory_is_created_0700(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("RUNTIME_DIRECTORY", "XDG_RUNTIME_DIR"):
        monkeypatch.delenv(var, raising=False)
    path = local_control.socket_dir(systemd_dir=tmp_path / "absent", tmp=str(tmp_path))
    assert path.parent == tmp_path and path.stat().st_mode & 0o777 == 0o700


def _render(agents: list[dict[str, Any]]) -> str:
    out = io.StringIO()
    Console(file=out, width=200, force_terminal=True, color_system=None).print(fleet_table(agents, {}))
    return out.getvalue()


def test_agent_text_is_shown_as_written_never_as_markup_or_escape_codes() -> None:
    """A comment with brackets shows as written (no crash); escape codes never reach the terminal."""
    agent = {"name": "a1", "state": "maintenance mode", "connected": True, "queues": ["q"], "used": 0,
             "concurrency": 2, "metrics": {}, "jobs": [], "comments": "disk [/dev/sdb] full [bold]x[/] \x1b[2J\x07"}
    text = _render([agent])
    assert "disk [/dev/sdb] full [bold]x[/]" in text
    assert "\x1b[2J" not in text and "\x07" not in text


def test_an_agent_holding_slots_shows_running_everywhere() -> None:
    """Every view (dashboard, `agent status`, metrics) takes its state from the same read model."""
    assert display_state("idle", 2) == "running"
    assert display_state("idle", 0) == "idle"
    assert display_state("maintenance pending", 1) == "maintenance pending"


def test_secrets_are_removed_from_what_tasks_inherit_by_name_and_by_value() -> None:
    env = {"AIRFLOW__EDGEEXEC__TOKEN": "eex_a_b", "AIRFLOW__EDGEEXEC__SHARED_SECRET": "s3",
           "AIRFLOW__EDGEEXEC__ADMIN_TOKEN": "adm", "COPY_OF_IT": "eex_a_b", "AIRFLOW_HOME": "/h",
           "AIRFLOW__EDGEEXEC__URL": "ws://gw"}
    gone = scrub_secrets(env, "eex_a_b")
    assert env == {"AIRFLOW_HOME": "/h", "AIRFLOW__EDGEEXEC__URL": "ws://gw"}
    assert set(gone) == {"AIRFLOW__EDGEEXEC__TOKEN", "AIRFLOW__EDGEEXEC__SHARED_SECRET",
                         "AIRFLOW__EDGEEXEC__ADMIN_TOKEN", "COPY_OF_IT"}


def test_the_agent_streams_no_more_of_a_log_than_the_gateway_keeps(tmp_path: Path) -> None:
    """A task writing 5 MiB: the stored copy holds 1 MiB, so the agent stops sending past it
    (a chatty task does not spend its session's log budget on bytes nobody keeps)."""
    import orjson

    from agent.logtail import LogTailer
    from edgeexec.protocol import MAX_STORED_LOG

    (tmp_path / "big.log").write_bytes(b"line of output\n" * (5 * (1 << 20) // 15))
    tailer = LogTailer(str(tmp_path))
    tailer.watch("j", orjson.dumps({"log_path": "big.log"}).decode())
    sent = sum(len(c.raw) for _ in range(10) for c in tailer.chunks("j"))
    assert MAX_STORED_LOG <= sent < MAX_STORED_LOG + (1 << 20)
    assert tailer.chunks("j", final=True) == [] and "j" not in tailer.tails
