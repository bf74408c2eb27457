"""The table of every Redis key edgeexec uses. Python builds them here, the Lua prelude
(lua/lib.lua, ``k(...)``) builds the same names from the same prefix.

``{p}`` is the configurable prefix (``[edgeexec] redis_prefix``, default ``edgeexec``), so several
installations can share one Redis. With Airflow's multi-team mode every team has its own
keyspace, ``{redis_prefix}:team:{team}`` (``keyspace()``): its jobs, queues, agents and tokens, so
equal queue or agent names in two teams never meet, and no script of one team reads another's
keys. No key of the team-less keyspace has ``team`` as its first segment. Queue and agent names are always the *last* segment of a key,
which keeps keys unambiguous even though names may contain ``:``.

| key                          | type    | holds                                                    | expiry |
|------------------------------|---------|----------------------------------------------------------|--------|
| {p}:job:{id}                 | hash    | one submission: queue, slots, prio, owner, state, agent  | TTL once terminal |
| {p}:ref:{ref}                | string  | newest job id for a workload ref (ti id + try)           | TTL once terminal |
| {p}:pending:{queue}:{slots}  | zset    | pending jobs, score -priority, member seq|id (FIFO ties) | emptied by claims |
| {p}:psizes:{queue}           | zset    | slot sizes that have pending jobs on a queue             | emptied by claims |
| {p}:queues                   | set     | queues ever submitted to (status, metrics)               | none, tiny |
| {p}:seq                      | string  | submission counter (FIFO order among equal priority)     | none |
| {p}:agent:{name}             | hash    | agent record: queues, conc, used, state, session, gw     | swept when offline |
| {p}:agents                   | set     | known agent names                                        | swept |
| {p}:free:{queue}             | zset    | connected accepting agents with free slots, score=free   | kept exact by scripts |
| {p}:ajobs:{name}             | set     | jobs assigned to or running on an agent                  | emptied on release |
| {p}:hb                       | zset    | agent -> liveness deadline (ms, Redis' clock); reaper's index | reaper removes |
| {p}:events:{owner}           | stream  | job state changes for the scheduler that owns the jobs   | trimmed by its reader; deleted with its owner |
| {p}:owner:{owner}            | string  | a scheduler is alive (refreshed by every sweep)          | job_ttl |
| {p}:owners                   | set     | schedulers that have event streams                        | reaper removes gone ones |
| {p}:gw:{gateway}             | channel | run/cancel/cmd notices for one gateway's agents          | pub/sub |
| {p}:log:{job}                 | string  | the job's task log as streamed by its agent (<= 1 MiB)   | job_ttl |
| {p}:status                   | channel | names of agents whose record changed (status stream)     | pub/sub |
| {p}:token:{id}, {p}:tokens   | hash/set| per-agent and admin tokens (digest only)                 | TTL when --expires |
| {p}:revoked                  | channel | ids of revoked tokens (gateways drop their sessions)     | pub/sub |
"""

from __future__ import annotations

from dataclasses import dataclass

from edgeexec.protocol import validate_team_name

DEFAULT_PREFIX = "edgeexec"


def keyspace(prefix: str, team: str) -> str:
    """The key prefix of one team's fleet ('' = no team: the prefix itself); ProtocolError
    (a ValueError) for a name Airflow would not accept as a team."""
    return f"{prefix}:team:{validate_team_name(team)}" if team else prefix


@dataclass(frozen=True, slots=True)
class Keys:
    prefix: str = DEFAULT_PREFIX

    def job(self, job_id: str) -> str:
        return f"{self.prefix}:job:{job_id}"

    def ref(self, ref: str) -> str:
        return f"{self.prefix}:ref:{ref}"

    def pending(self, queue: str, slots: int) -> str:
        return f"{self.prefix}:pending:{queue}:{slots}"

    def psizes(self, queue: str) -> str:
        return f"{self.prefix}:psizes:{queue}"

    @property
    def queues(self) -> str:
        return f"{self.prefix}:queues"

    def agent(self, name: str) -> str:
        return f"{self.prefix}:agent:{name}"

    @property
    def agents(self) -> str:
        return f"{self.prefix}:agents"

    def free(self, queue: str) -> str:
        return f"{self.prefix}:free:{queue}"

    def agent_jobs(self, name: str) -> str:
        return f"{self.prefix}:ajobs:{name}"

    @property
    def heartbeats(self) -> str:
        return f"{self.prefix}:hb"

    def events(self, owner: str) -> str:
        return f"{self.prefix}:events:{owner}"

    def gateway_channel(self, gateway: str) -> str:
        return f"{self.prefix}:gw:{gateway}"

    def log(self, job_id: str) -> str:
        return f"{self.prefix}:log:{job_id}"

    def owner(self, owner: str) -> str:
        return f"{self.prefix}:owner:{owner}"

    @property
    def owners(self) -> str:
        return f"{self.prefix}:owners"

    @property
    def status_channel(self) -> str:
        return f"{self.prefix}:status"
