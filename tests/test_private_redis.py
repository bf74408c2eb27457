"""A redis-server we start is ours alone, and the suite notices when it is not.

Once, `edgeexec token list` did not show a token created a moment before, while it showed older
ones. Nothing in edgeexec deletes a token without an expiry, and the create is one MULTI; the one
way found to produce exactly that listing is Redis replication: a server demoted to a replica
(as a sentinel does to a master it failed over, when that master comes back) takes over its new
master's data and drops the writes it acknowledged since. Our servers were open to that: a port
picked free could be taken before redis-server bound it, and start() accepted *any* server
answering on the port. Both are tested here with real servers.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from edgeexec.localstack import processes
from edgeexec.localstack.processes import BIN, PortTaken, RedisServer, wait_for
from tests.conftest import assert_private


@pytest.fixture()
def servers(tmp_path: Path) -> Iterator[list[RedisServer]]:
    started: list[RedisServer] = []
    yield started
    for s in started:
        s.stop()


def _tokens(url: str, prefix: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(BIN / "edgeexec"), "token", *args, "--redis-url", url, "--redis-prefix", prefix],
                          capture_output=True, text=True, timeout=60)


def test_a_port_another_server_holds_is_never_mistaken_for_ours(servers: list[RedisServer], tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """The race, made certain: the 'free' port is one another redis-server already serves. start()
    moves to another port and returns only when its own process answers; with a fixed port it
    says the port is taken instead of handing out the other server."""
    other = RedisServer(tmp_path / "other").start()
    servers.append(other)
    picks = iter([other.port])
    real_free_port = processes.free_port
    # the one substitution in this file: free_port returns a taken port first, as a lost race would
    monkeypatch.setattr(processes, "free_port", lambda: next(picks, None) or real_free_port())
    mine = RedisServer(tmp_path / "mine")
    servers.append(mine)
    mine.start()
    assert mine.port != other.port and mine.proc is not None and mine.owner_pid() == mine.proc.pid
    with pytest.raises(PortTaken, match=f"port {other.port} is taken"):
        RedisServer(tmp_path / "fixed", port=other.port).start()


def test_a_demoted_session_server_loses_the_newest_token_and_the_guard_says_so(
        servers: list[RedisServer], tmp_path: Path) -> None:
    """The failure reproduced: tokens a and b replicate, the replica is promoted (a failover),
    `lister` is created on the old master (exit 0), the old master rejoins as a replica, and
    the listing shows a and b but not lister. The per-test guard names the cause."""
    master = RedisServer(tmp_path / "master").start()
    servers.append(master)
    replica = RedisServer(tmp_path / "replica", extra=["--replicaof", "127.0.0.1", str(master.port)]).start()
    servers.append(replica)
    r = redis.Redis(port=replica.port)
    wait_for(lambda: r.info("replication")["master_link_status"] == "up", 30, "the replica to sync")
    for name in ("a", "b"):
        assert _tokens(master.url, "pr", "create", "--agent", name, "-q", "q").returncode == 0
    redis.Redis(port=master.port).wait(1, 5000)
    r.replicaof("NO", "ONE")
    assert _tokens(master.url, "pr", "create", "--agent", "lister", "-q", "q").returncode == 0
    m: Any = redis.Redis(port=master.port)
    m.replicaof("127.0.0.1", str(replica.port))
    wait_for(lambda: m.info("replication")["master_link_status"] == "up", 30, "the old master to resync")
    listing = _tokens(master.url, "pr", "list").stdout
    assert "agent=a " in listing and "agent=b " in listing and "lister" not in listing
    with pytest.raises(AssertionError, match="was made a slave"):
        assert_private(master)
    m.replicaof("NO", "ONE")
    assert_private(master)
