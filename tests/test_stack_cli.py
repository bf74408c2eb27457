"""`edgeexec standalone|demo` refuse bad arguments before they start anything, and say what to do."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from edgeexec.errors import ConfigError
from edgeexec.localstack.processes import BIN
from edgeexec.localstack.stack import AgentSpec


def test_agent_specs_parse_and_bad_ones_say_the_format() -> None:
    assert AgentSpec.parse("gpu-1:gpu,default:2") == AgentSpec("gpu-1", ("gpu", "default"), 2)
    assert AgentSpec.parse("edge-2") == AgentSpec("edge-2", ("default",), 8)
    for bad in ("bad name:q", "a:q:zero", "a:q:0", "a:bad queue!"):
        with pytest.raises(ConfigError, match=r"NAME\[:QUEUES\[:CONCURRENCY\]\]|out of range"):
            AgentSpec.parse(bad)


@pytest.mark.parametrize(("args", "needle"), [
    (("demo", "--dags-folder", "{tmp}"), "--dag ID"),
    (("standalone", "--dags-folder", "{tmp}/missing"), "does not exist"),
    (("demo", "--agent", "no good:q"), "NAME[:QUEUES[:CONCURRENCY]]"),
])
def test_bad_stack_arguments_exit_2_before_starting_anything(tmp_path: Path, args: tuple[str, ...],
                                                             needle: str) -> None:
    argv = [a.replace("{tmp}", str(tmp_path)) for a in args]
    out = subprocess.run([str(BIN / "edgeexec"), *argv, "--home", str(tmp_path / "home")], capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 2 and needle in out.stderr, out.stderr
    assert not (tmp_path / "home").exists(), "nothing was started"
