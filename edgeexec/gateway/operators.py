"""Who holds a control session, and what they may do.

One shape for both kinds of operator: an admin token (the gateway's own page, the `agent` and
`airflow edgeexec` CLIs) and an Airflow user on the page inside Airflow's UI, whom Airflow's auth
manager identifies (edgeexec/airflow/ui_page.py). The control hub only asks an ``Operators``
source who is calling, and later whether they still may.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from starlette.websockets import WebSocket

from edgeexec.gateway.auth import Auth, Denial


@dataclass(frozen=True, slots=True)
class Operator:
    """``read_only`` says why the session may watch but not command ('' = it may command);
    ``expires_at`` is the wall-clock second the session's credential expires (None: never, or
    watched elsewhere, as admin tokens are by the gateway's token recheck)."""

    id: str
    name: str
    read_only: str = ""
    expires_at: float | None = None
    team: str = ""
    """The team whose fleet the session watches ('' = the team-less fleet)."""
    teams: tuple[str, ...] = ()
    """Every team's fleet this operator may watch (the page offers to switch)."""

    @property
    def manage(self) -> bool:
        return not self.read_only

    def describe(self) -> dict[str, object]:
        """What the page shows about its own session."""
        return {"name": self.name, "manage": self.manage, "read_only": self.read_only, "team": self.team,
                "teams": list(self.teams)}


class Operators(Protocol):
    """A source of operators. ``recheck_interval`` (seconds, or None) asks the hub to call
    ``recheck`` that often during a session: it returns the operator as they are now (their
    permissions may have changed), or why their session ends."""

    recheck_interval: float | None

    async def identify(self, ws: WebSocket) -> Operator | Denial: ...

    async def deny(self, ws: WebSocket, denial: Denial) -> None: ...

    async def recheck(self, ws: WebSocket, operator: Operator) -> Operator | str: ...


class AdminTokens:
    """Operators holding an admin token. Revocation and expiry are enforced by the gateway's own
    token recheck (service.py), which closes control sessions too; nothing to recheck here."""

    recheck_interval: float | None = None

    def __init__(self, auth: Auth, team: str = "") -> None:
        self.auth, self.team = auth, team

    async def identify(self, ws: WebSocket) -> Operator | Denial:
        who = await self.auth.admin(ws)
        if isinstance(who, tuple):
            return who
        return Operator(id=who.id, name=f"admin token {who.id}", team=self.team, teams=(self.team,))

    async def deny(self, ws: WebSocket, denial: Denial) -> None:
        await self.auth.deny(ws, denial)

    async def recheck(self, ws: WebSocket, operator: Operator) -> Operator | str:
        return operator
