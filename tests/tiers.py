"""Which tier each test file belongs to and what it needs: the one table behind the markers
(conftest.py applies them) and tests/README.md's table (generated: ``python -m tests.tiers``).

* fast: no browser, no fresh venvs, no Airflow (``make fast``, under 2 minutes);
* slow: slow or heavy, without Airflow in this process (a browser, fresh venvs, Sentinel, floods, fuzzing);
* airflow: Airflow in this process, or a real agent whose forkserver loads it;
* e2e, faults: the Airflow deployment tiers.

A test in a fast file that takes long carries ``@pytest.mark.slow`` itself.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

TIERS: dict[str, tuple[str, str]] = {
    "test_agent_jobs.py": ("fast", "nothing: the agent's job bookkeeping, pure"),
    "test_agent_local.py": ("fast", "the agent's local socket and terminal output, in this process"),
    "test_agent_sessions.py": ("airflow", "a real agent process against a scripted gateway"),
    "test_batch.py": ("fast", "moto's server"),
    "test_contract.py": ("fast", "Redis, moto's server: one contract for every dispatcher"),
    "test_dashboard.py": ("slow", "Chromium (selenium) and a gateway process"),
    "test_deploy.py": ("airflow", "gateway and agent processes started from the compose and systemd lines"),
    "test_docs.py": ("fast", "nothing: the commands quoted in docs parse"),
    "test_executor.py": ("airflow", "Airflow's executor API in this process, Redis"),
    "test_fuzz_gateway.py": ("slow", "a gateway process fuzzed for about 20 s"),
    "test_gateway.py": ("fast", "a gateway process, raw WebSockets, Redis"),
    "test_hostile_agent.py": ("fast", "a gateway process and raw-socket agents holding valid tokens"),
    "test_layout.py": ("fast", "nothing: package layout and import cycles"),
    "test_operate.py": ("airflow", "real agent processes and the `agent` CLI"),
    "test_airflow_cli.py": ("airflow", "the `airflow` CLI: provider, config, `airflow edgeexec` against real agents"),
    "test_packaging.py": ("slow", "fresh venvs per extra"),
    "test_private_redis.py": ("fast", "redis-servers on taken ports and a demoted one, the `edgeexec token` CLI"),
    "test_protocol.py": ("fast", "nothing: the wire protocol, pure"),
    "test_pure.py": ("fast", "nothing: pure policies, generated docs in sync"),
    "test_redis_ha.py": ("slow", "Sentinel and two redis-servers"),
    "test_runner.py": ("airflow", "the task forkserver"),
    "test_scripts.py": ("fast", "nothing: the Lua scripts' arguments against their entries"),
    "test_stack_cli.py": ("fast", "nothing started: `edgeexec standalone|demo` argument checks"),
    "test_states.py": ("fast", "nothing: the Lua scripts against the state tables"),
    "test_store_lua.py": ("fast", "Redis: slot accounting and job states in the scripts"),
    "test_tls.py": ("airflow", "real agents against a `wss://` gateway"),
    "test_tokens.py": ("fast", "a gateway process, the `edgeexec token` CLI, Redis"),
    "e2e/": ("e2e", "Airflow scheduler + api-server + dag-processor, on SQLite and PostgreSQL"),
    "faults/": ("faults", "a whole deployment with kills, network cuts and Redis restarts"),
}
MARKED_TIERS = ("slow", "airflow")
"""Tiers applied as markers by conftest.py (e2e and faults mark their own modules)."""


def tier_of(path: Path, tests_root: Path) -> str:
    rel = path.relative_to(tests_root)
    key = f"{rel.parts[0]}/" if len(rel.parts) > 1 else rel.name
    return TIERS[key][0]


def table() -> str:
    rows = ["| file | tier | needs |", "|---|---|---|"]
    rows += [f"| `{name}` | {tier} | {needs} |" for name, (tier, needs) in TIERS.items()]
    return "\n".join(rows)


def render(text: str) -> str:
    pattern = re.compile(r"(<!-- tiers:begin -->\n).*?(<!-- tiers:end -->)", re.S)
    if not pattern.search(text):
        raise ValueError("tests/README.md lacks the <!-- tiers:begin/end --> markers")
    return pattern.sub(lambda m: m.group(1) + table() + "\n" + m.group(2), text)


if __name__ == "__main__":
    readme = Path(sys.argv[1] if len(sys.argv) > 1 else "tests/README.md")
    readme.write_text(render(readme.read_text()))
