"""The Lua scripts against edgeexec/states.py, the one home of job and agent states (pure: reads files).

Every state literal a script writes or compares must be a state of the tables, and the job states
a script can move a job into (directly or through lib.lua's helpers) must be exactly those the
transition table names that script for. A new state or transition in Lua alone fails here.
"""

from __future__ import annotations

import re

import pytest

from edgeexec.states import (
    ACCEPTING_STATES,
    AGENT_STATE_TABLE,
    AGENT_STATE_WRITERS,
    JOB_TRANSITIONS,
    REPORTED,
    TERMINAL_JOB_STATES,
    AgentState,
    JobState,
    derive_agent_state,
    scripts_moving_to,
)
from edgeexec.store import scripts

STATES = {s.value for s in JobState} | {s.value for s in AgentState}
# helpers of lib.lua and the job state each one moves a job into
HELPER_TARGETS = {"enqueue": {JobState.PENDING}, "place": {JobState.ASSIGNED}, "claim": {JobState.ASSIGNED}}
JOB_HASH = r"(?:j|k\('job', [^)]*\))"


def _body(name: str) -> str:
    return re.sub(r"--[^\n]*", "", scripts.script_text(name))


def _lib() -> str:
    return re.sub(r"--[^\n]*", "", scripts.script_text("lib"))


def _lua_table(src: str, name: str) -> set[str]:
    m = re.search(rf"local {name} = \{{([^}}]*)\}}", src)
    assert m, f"lib.lua defines no {name} table"
    return set(re.findall(r"(\w+) = true", m.group(1)))


def _job_targets(src: str) -> set[JobState]:
    found: set[JobState] = set()
    for helper, targets in HELPER_TARGETS.items():
        if re.search(rf"(?<![\w.]){helper}\(", src):
            found |= targets
    for call in re.finditer(r"(?<![\w.])finish\(\s*[^,]+,\s*([^,]+),", src):
        literal = re.fullmatch(r"'(\w+)'", call.group(1).strip())
        found |= {JobState(literal.group(1))} if literal else set(TERMINAL_JOB_STATES)
    for write in re.finditer(rf"'HSET', {JOB_HASH}, 'state', '([\w ]+)'", src):
        found.add(JobState(write.group(1)))
    return found


def _state_literals(src: str) -> set[str]:
    """Quoted strings used as states: written to a 'state' field, passed to finish/emit, compared
    with a state variable, or assigned to one."""
    patterns = [
        r"'HSET', [^\n]*'state', '([\w ]+)'",
        r"(?<![\w.])(?:finish|emit)\(\s*[^,]+,\s*'([\w ]+)'",
        r"(?:\bst|\bstate|\bcur|\br|\boffline|'state'\))\s*[=~]=\s*'([\w ]+)'",
        r"\bf\[\d\]\s*[=~]=\s*'([a-z][a-z ]+)'",  # job fields read with HMGET: only words are states
        r"(?:offline|state)\s*(?:,\s*\w+\s*)?=\s*'([\w ]+)'",
    ]
    return {m for p in patterns for m in re.findall(p, src)}


def test_lib_tables_match_the_state_module() -> None:
    assert _lua_table(_lib(), "TERMINAL") == {s.value for s in TERMINAL_JOB_STATES}
    assert _lua_table(_lib(), "ACCEPTING") == {s.value for s in ACCEPTING_STATES}


@pytest.mark.parametrize("name", [*scripts.SCRIPT_NAMES, "lib"])
def test_every_state_a_script_names_is_a_state_of_the_tables(name: str) -> None:
    unknown = _state_literals(_body(name) if name != "lib" else _lib()) - STATES
    assert not unknown, f"{name}.lua uses state(s) {unknown} that edgeexec/states.py does not define"


@pytest.mark.parametrize("name", scripts.SCRIPT_NAMES)
def test_each_script_moves_jobs_only_along_its_transitions(name: str) -> None:
    declared = {to for (_, to), by in JOB_TRANSITIONS.items() if name in by}
    assert _job_targets(_body(name)) == declared, (
        f"{name}.lua moves jobs into {sorted(_job_targets(_body(name)))}, the table names it for "
        f"{sorted(declared)}: update JOB_TRANSITIONS in edgeexec/states.py")


def test_agent_states_written_by_scripts_are_declared() -> None:
    for name in scripts.SCRIPT_NAMES:
        written = set(re.findall(r"'HSET', a, [^\n]*'state', '([\w ]+)'", _body(name)))
        written |= set(re.findall(r"(?:offline|state)\s*(?:,\s*\w+\s*)?=\s*'([\w ]+)'", _body(name)))
        for state in written:
            assert name in AGENT_STATE_WRITERS[AgentState(state)], f"{name}.lua writes agent state {state!r}"
    assert AGENT_STATE_WRITERS[REPORTED] == {"register", "heartbeat"}


def test_the_scanner_sees_a_transition_added_in_lua() -> None:
    """The checks above are only as good as the scanner: it must see each way a script moves a job."""
    assert _job_targets("enqueue(id)") == {JobState.PENDING}
    assert _job_targets("place(id)") == {JobState.ASSIGNED}
    assert _job_targets("finish(id, 'failed', why, '', ttl)") == {JobState.FAILED}
    assert _job_targets("finish(id, ARGV[5], ARGV[6])") == set(TERMINAL_JOB_STATES)
    assert _job_targets("redis.call('HSET', k('job', id), 'state', 'running')") == {JobState.RUNNING}
    assert _state_literals("if st == 'paused' then") == {"paused"}


def test_every_job_state_is_reachable_and_terminal_states_are_final() -> None:
    for state in JobState:
        assert scripts_moving_to(state), f"no script moves a job into {state}"
    assert not [t for t in JOB_TRANSITIONS if t[0] in TERMINAL_JOB_STATES]


def test_the_agent_state_table_is_total() -> None:
    assert len(AGENT_STATE_TABLE) == 8
    assert derive_agent_state(has_jobs=True, draining=False, maintenance=True) is AgentState.MAINTENANCE_PENDING
    assert {s for s in AgentState} - set(AGENT_STATE_TABLE.values()) == {AgentState.STARTING, AgentState.UNKNOWN}
