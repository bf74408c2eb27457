"""The agent's exception tree.

    AgentError
    ├── FatalConnectError   the gateway refused us for a reason retrying cannot fix (bad token, bad hello)
    └── RunnerError         a workload could not be started here
"""

from __future__ import annotations


class AgentError(Exception):
    """Root of every error the agent raises on purpose."""


class FatalConnectError(AgentError):
    """Retrying would not help: fix the configuration named in the message."""


class RunnerError(AgentError):
    """A workload could not be started."""
