"""The dashboard in a real headless Chromium (Debian's chromium + chromedriver, driven by selenium)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from selenium import webdriver
from selenium.webdriver.common.by import By
from websockets.asyncio.client import connect

from edgeexec import protocol as p
from edgeexec.airflow.redis_dispatcher import RedisDispatcher
from edgeexec.store.keys import Keys
from edgeexec.tokens import store as token_store
from tests.browser import chromium, until
from tests.servers import start_gateway
from tests.test_gateway import RawAgent, _hello, _spec


class Site:
    def __init__(self, port: int, keys: Keys, admin: str, agent_token: str, agent: str) -> None:
        self.port, self.keys, self.admin, self.agent_token, self.agent = port, keys, admin, agent_token, agent


@pytest.fixture(scope="module")
def site(redis_server: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    keys = Keys(f"db{uuid.uuid4().hex[:8]}")
    client = redis.Redis.from_url(redis_server.url, decode_responses=True)
    admin, _ = token_store.create(client, keys, agent="", queues=(), admin=True, ttl_s=None)
    agent = f"edge-{uuid.uuid4().hex[:6]}"
    agent_token, _ = token_store.create(client, keys, agent=agent, queues=("dash",), admin=False, ttl_s=None)
    port, proc = start_gateway(redis_server.url, keys.prefix, Path(tmp_path_factory.mktemp("dash")) / "gateway.log")
    yield Site(port, keys, admin, agent_token, agent)
    proc.stop()


@pytest.fixture()
def browser(tmp_path: Path) -> Iterator[webdriver.Chrome]:
    with chromium(tmp_path) as driver:
        yield driver


async def test_dashboard_shows_the_fleet_live_and_toggles_maintenance(
        site: Site, browser: webdriver.Chrome, redis_server: Any) -> None:
    """An agent connecting, a job running then finishing, and a maintenance toggle reaching the agent."""
    row = f"tr[data-agent='{site.agent}']"
    await asyncio.to_thread(browser.get, f"http://127.0.0.1:{site.port}/")
    await asyncio.to_thread(browser.find_element(By.ID, "token").send_keys, site.admin)
    await asyncio.to_thread(browser.find_element(By.ID, "connect").click)
    await until(lambda: "live" in browser.find_element(By.ID, "status").text, "a live connection")

    d = RedisDispatcher.from_url(redis_server.url, site.keys.prefix, liveness_s=30, job_ttl_s=60)
    d.start("dash-sched")
    async with connect(f"ws://127.0.0.1:{site.port}/ws/agent",
                       additional_headers={"Authorization": f"Bearer {site.agent_token}"}) as ws:
        agent: RawAgent = await _hello(ws, site.agent, queues=("dash",), concurrency=2)
        await agent.send(p.Heartbeat(used=0, metrics={"cpu_percent": 42.0}, state="idle"))
        await until(lambda: browser.find_element(By.CSS_SELECTOR, f"{row} .state").text == "idle", "the agent idle")

        spec = _spec("dash")
        d.submit([spec])
        run = await agent.recv_type(p.Run)
        await agent.send(p.Accepted(job=run.job))
        await until(lambda: spec.ref in browser.find_element(By.CSS_SELECTOR, f"{row} .jobs").text, "the job")
        await until(lambda: browser.find_element(By.CSS_SELECTOR, f"{row} .slots").text == "1 / 2", "a used slot")
        await until(lambda: browser.find_element(By.CSS_SELECTOR, "tr[data-queue='dash']"), "the queue's figures")
        await agent.send(p.StateReport(job=run.job, state=p.JobState.SUCCESS, exit_code=0))
        await until(lambda: browser.find_element(By.CSS_SELECTOR, f"{row} .jobs").text == "", "the job finishing")

        comment = browser.find_element(By.CSS_SELECTOR, f"{row} .maint-comment")
        await asyncio.to_thread(comment.send_keys, "replacing the PLC")
        await asyncio.to_thread(browser.find_element(By.CSS_SELECTOR, f"{row} .maint-toggle").click)
        command = await agent.recv_type(p.Command)
        assert (command.action, command.comments) == ("maintenance_on", "replacing the PLC")
        await agent.send(p.AgentStatus(state="maintenance mode", comments=command.comments))
        await until(lambda: browser.find_element(By.CSS_SELECTOR, f"{row} .state").text == "maintenance mode",
                    "maintenance mode")
        assert "replacing the PLC" in browser.find_element(By.CSS_SELECTOR, row).text
    page = await asyncio.to_thread(lambda: browser.page_source)
    assert site.admin not in page and site.agent_token not in page and "jwt-secret" not in page
    d.stop(terminate=False)


async def test_dashboard_refuses_a_non_admin_token(site: Site, browser: webdriver.Chrome) -> None:
    """An agent token does not open the control stream; the page says so."""
    await asyncio.to_thread(browser.get, f"http://127.0.0.1:{site.port}/dashboard")
    await asyncio.to_thread(browser.find_element(By.ID, "token").send_keys, site.agent_token)
    await asyncio.to_thread(browser.find_element(By.ID, "connect").click)
    await until(lambda: "disconnected" in browser.find_element(By.ID, "status").text, "a refusal")
