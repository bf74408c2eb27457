"""Session fixtures: a private redis-server for the whole run, and a clean key prefix per test."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from edgeexec.keys import Keys
from tests.servers import RedisServer


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = RedisServer(Path(tmp_path_factory.mktemp("redis"))).start()
    yield server
    server.stop()


@pytest.fixture()
def keys() -> Keys:
    """Each test gets its own prefix in the session's Redis, so tests never see each other's state."""
    return Keys(f"t{uuid.uuid4().hex[:10]}")


@pytest.fixture()
def rclient(redis_server: RedisServer) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_server.url, decode_responses=True)
    yield client
    client.close()
