"""The edgeexec exception tree.

    EdgeExecError
    ├── ConfigError          a setting is missing or wrong: fix the configuration (fatal)
    ├── PeerError            the other side sent something we cannot accept
    │   └── protocol.ProtocolError (a ValueError too) - a malformed or unexpected frame
    └── StateError           we are in a state where the request cannot be honoured
        └── StoreUnavailable Redis cannot be reached (retryable)
"""

from __future__ import annotations


class EdgeExecError(Exception):
    """Root of every error edgeexec raises on purpose."""


class ConfigError(EdgeExecError):
    """A setting is missing or invalid; the message names it and how to set it."""


class PeerError(EdgeExecError):
    """The remote side sent something we cannot accept."""


class StateError(EdgeExecError):
    """The request cannot be honoured in the current state."""


class StoreUnavailable(StateError):
    """Redis did not answer; callers retry with backoff."""
