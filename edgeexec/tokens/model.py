"""Per-agent and admin tokens (pure): format, hashing, expiry, and what a token allows.

A token is ``eex_<id>_<secret>``. The id is public (listed, used to revoke); only a SHA-256 of the
whole token is stored, so a Redis dump does not hand out working tokens. Tokens carry 256 bits of
randomness, so a fast hash is the right tool (no password-stretching needed).
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass

from edgeexec.protocol import CloseCode, Hello, ProtocolError

PREFIX = "eex_"
_TOKEN_RE = re.compile(r"^eex_([0-9a-f]{12})_([A-Za-z0-9_-]{20,})$")
_DURATION_RE = re.compile(r"^(\d+)\s*([smhdw])$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


@dataclass(frozen=True, slots=True)
class TokenInfo:
    id: str
    agent: str
    queues: tuple[str, ...]
    admin: bool
    created_ms: int
    expires_ms: int = 0

    def expired(self, now_ms: int) -> bool:
        return bool(self.expires_ms) and now_ms >= self.expires_ms


SHARED_SECRET = TokenInfo(id="shared-secret", agent="", queues=(), admin=True, created_ms=0)
"""The identity of the development-only shared secret: any agent, any queue, admin."""


def generate() -> tuple[str, str]:
    """(token id, token); the token is shown once and never stored."""
    token_id = secrets.token_hex(6)
    return token_id, f"{PREFIX}{token_id}_{secrets.token_urlsafe(32)}"


def token_id(token: str) -> str | None:
    m = _TOKEN_RE.match(token)
    return m.group(1) if m else None


def digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def matches(token: str, stored_digest: str) -> bool:
    return hmac.compare_digest(digest(token), stored_digest)


def parse_duration(text: str) -> int:
    """'30d', '12h', '15m', '2w', '90s' -> seconds."""
    m = _DURATION_RE.match(text.strip().lower())
    if not m:
        raise ValueError(f"{text!r} is not a duration: use a number and a unit, e.g. 30d, 12h, 15m")
    return int(m.group(1)) * _UNITS[m.group(2)]


def check_hello(info: TokenInfo, hello: Hello) -> None:
    """An agent token admits one agent name and only the queues it was created for."""
    if info is SHARED_SECRET:
        return
    if info.admin:
        raise ProtocolError("admin tokens are for control clients, not agents: create an agent token with "
                            "`edgeexec token create --agent NAME --queues ...`", CloseCode.FORBIDDEN)
    if hello.name != info.agent:
        raise ProtocolError(f"this token belongs to agent {info.agent!r}, not {hello.name!r}: start the agent "
                            f"with --name {info.agent} or create a token for {hello.name!r}", CloseCode.FORBIDDEN)
    refused = [q for q in hello.queues if q not in info.queues]
    if refused:
        raise ProtocolError(f"queue(s) {', '.join(refused)} not allowed by this token (allowed: "
                            f"{', '.join(info.queues)}); create a token with --queues covering them",
                            CloseCode.FORBIDDEN)
