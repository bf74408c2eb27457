"""The gateway: a Starlette app holding the agents' WebSockets; all state lives in Redis."""

from edgeexec.gateway.app import create_app

__all__ = ["create_app"]
