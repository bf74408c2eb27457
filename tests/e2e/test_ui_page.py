"""The fleet page inside Airflow's UI: Airflow users sign in to Airflow, not to edgeexec.

A real api-server with SimpleAuthManager users (tests/e2e/conftest.py USERS): 'ops' may edit
pools and so command agents, 'watcher' may only read them. Headless Chromium logs in through
Airflow's own login page and opens Admin → Edge agents.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from selenium import webdriver
from selenium.webdriver.common.by import By
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from edgeexec import protocol as p
from edgeexec.localstack.processes import wait_for
from edgeexec.localstack.stack import AgentSpec
from tests.browser import act, chromium, until
from tests.e2e.conftest import E2E

pytestmark = pytest.mark.e2e
PAGE_SOCKET = "/edgeexec/ui/ws"


@pytest.fixture()
def browser(tmp_path: Path) -> Iterator[webdriver.Chrome]:
    with chromium(tmp_path) as driver:
        yield driver


def _login(browser: webdriver.Chrome, e2e: E2E, user: str) -> None:
    """Through Airflow's own login page, as a person would."""
    browser.delete_all_cookies()
    browser.get(f"{e2e.stack.api_url}/auth/login")
    wait_for(lambda: bool(browser.find_elements(By.NAME, "username")), 60, "Airflow's login form", 0.2)
    browser.find_element(By.NAME, "username").send_keys(user)
    browser.find_element(By.NAME, "password").send_keys(e2e.stack.password(user))
    browser.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    wait_for(lambda: browser.get_cookie("_token") is not None, 30, f"{user} signed in", 0.2)


def _open_page(browser: webdriver.Chrome, e2e: E2E) -> None:
    """Airflow's UI at the plugin's route: the page is framed inside Airflow's navigation."""
    from edgeexec.airflow.plugin import URL_ROUTE  # the plugin module imports Airflow

    browser.get(f"{e2e.stack.api_url}/plugin/{URL_ROUTE}")
    wait_for(lambda: bool(browser.find_elements(By.TAG_NAME, "iframe")), 60, "the framed page", 0.2)
    browser.switch_to.frame(browser.find_element(By.TAG_NAME, "iframe"))
    wait_for(lambda: "live" in browser.find_element(By.ID, "status").text, 30, "a live socket", 0.2)


def _text(browser: webdriver.Chrome, css: str) -> str:
    return str(browser.find_element(By.CSS_SELECTOR, css).text)


def test_the_page_is_under_airflows_admin_menu(e2e: E2E) -> None:
    from edgeexec.airflow.plugin import URL_ROUTE

    views = [v for plugin in e2e.stack.api("GET", "/plugins")["plugins"] for v in plugin["external_views"]]
    ours = [v for v in views if v.get("url_route") == URL_ROUTE]
    assert len(ours) == 1 and ours[0]["category"] == "admin" and ours[0]["href"] == "/edgeexec/ui/", views


async def test_an_operator_watches_live_and_commands_agents(e2e: E2E, browser: webdriver.Chrome) -> None:
    """'ops' sees an agent arrive and a task run and finish, pushed; maintenance with a comment,
    concurrency and a bulk shutdown reach the agent."""
    name = f"agent-ui-{uuid.uuid4().hex[:4]}"
    row = f"tr[data-agent='{name}']"
    await asyncio.to_thread(_login, browser, e2e, "ops")
    await asyncio.to_thread(_open_page, browser, e2e)
    assert "signed in as Airflow user ops" in _text(browser, "#session")
    assert "read-only" not in _text(browser, "#session")

    e2e.stack.start_agent(AgentSpec(name, ("ui",), 2))
    await until(lambda: _text(browser, f"{row} .state") == "idle", "the new agent, idle", 60)
    run_id = e2e.stack.trigger("e2e_live_log", {"marker": "ui page", "sleep": 8})
    job_row = "#jobs tr"
    await until(lambda: any("e2e_live_log.chatty" in r.text and "agent-main" in r.text
                            for r in browser.find_elements(By.CSS_SELECTOR, job_row)), "the running task", 90)
    assert await asyncio.to_thread(e2e.stack.wait_for_run, "e2e_live_log", run_id, 120) == "success"
    await until(lambda: not any("e2e_live_log.chatty" in r.text for r in browser.find_elements(By.CSS_SELECTOR, job_row)),
                "the task gone from running jobs")

    await act(lambda: browser.find_element(By.CSS_SELECTOR, f"{row} .maint-comment").send_keys("swapping the UPS"),
              "typing a comment")
    await act(lambda: browser.find_element(By.CSS_SELECTOR, f"{row} .maint-toggle").click(), "entering maintenance")
    await until(lambda: e2e.redis.hget(e2e.keys.agent(name), "state") == "maintenance mode", "the agent in maintenance")
    assert e2e.redis.hget(e2e.keys.agent(name), "comments") == "swapping the UPS"
    await until(lambda: _text(browser, f"{row} .state") == "maintenance mode", "maintenance on the page")
    await act(lambda: browser.find_element(By.CSS_SELECTOR, f"{row} .maint-toggle").click(), "leaving maintenance")
    await until(lambda: _text(browser, f"{row} .state") == "idle", "the agent back from maintenance")

    def set_slots() -> None:
        slots = browser.find_element(By.CSS_SELECTOR, f"{row} .concurrency")
        slots.clear()
        slots.send_keys("3")
        browser.find_element(By.CSS_SELECTOR, f"{row} .set-concurrency").click()

    await act(set_slots, "setting the concurrency")
    await until(lambda: _text(browser, f"{row} .slots") == "0 / 3", "the new concurrency", 60)

    await act(lambda: browser.find_element(By.CSS_SELECTOR, f"{row} .pick").click(), "selecting the agent")
    assert _text(browser, "#selected") == "1 selected"
    browser.find_element(By.ID, "bulk-shutdown").click()
    assert name in _text(browser, "#confirm-question")
    browser.find_element(By.ID, "confirm-yes").click()
    await until(lambda: not e2e.stack.procs[f"agent-{name}"].alive(), "the agent process exiting", 60)
    await until(lambda: "disconnected" in _text(browser, f"{row} .state"), "the agent offline on the page")
    assert "refused" not in _text(browser, "#results"), _text(browser, "#results")


async def test_a_viewer_watches_but_is_refused_commands(e2e: E2E, browser: webdriver.Chrome) -> None:
    """'watcher' may read pools, not edit them: the page says read-only, its buttons are off, and
    a command sent anyway is refused by the server and reaches no agent."""
    await asyncio.to_thread(_login, browser, e2e, "watcher")
    await asyncio.to_thread(_open_page, browser, e2e)
    await until(lambda: browser.find_element(By.CSS_SELECTOR, "tr[data-agent='agent-main']"), "the fleet")
    assert "read-only" in _text(browser, "#session")
    assert not browser.find_element(By.CSS_SELECTOR, "tr[data-agent='agent-main'] .maint-toggle").is_enabled()
    browser.execute_script('send({type: "command", id: 7, agent: "agent-main", action: "maintenance_on", '
                           'comments: "not allowed"})')
    await until(lambda: "refused: read-only" in _text(browser, "#results"), "the refusal")
    await asyncio.sleep(1)
    assert e2e.redis.hget(e2e.keys.agent("agent-main"), "state") in ("idle", "running")
    assert e2e.redis.hget(e2e.keys.agent("agent-main"), "comments") != "not allowed"


def _socket_url(e2e: E2E) -> str:
    return e2e.stack.api_url.replace("http://", "ws://") + PAGE_SOCKET


async def _status(e2e: E2E, **kwargs: Any) -> int:
    try:
        async with connect(_socket_url(e2e), open_timeout=30, **kwargs):
            return 101
    except InvalidStatus as exc:
        return int(exc.response.status_code)


async def test_the_socket_needs_an_airflow_session_from_airflows_own_pages(e2e: E2E) -> None:
    """No session: 401. A browser session (the cookie) offered by another site's page: 403, so a
    page elsewhere cannot drive the fleet with a signed-in user's cookie. The same cookie from
    Airflow's origin, or a bearer token from a script, is admitted."""
    cookie = {"Cookie": f"_token={e2e.stack.login('watcher')}"}
    assert await _status(e2e) == 401
    assert await _status(e2e, additional_headers=cookie, origin="http://evil.example") == 403
    assert await _status(e2e, additional_headers=cookie) == 403  # a cookie without an Origin: not a page of ours
    assert await _status(e2e, additional_headers=cookie, origin=e2e.stack.api_url) == 101
    assert await _status(e2e, additional_headers={"Authorization": "Bearer forged.jwt.value"}) == 401
    bearer = {"Authorization": f"Bearer {e2e.stack.login('watcher')}"}
    async with connect(_socket_url(e2e), additional_headers=bearer, open_timeout=30) as ws:
        await ws.send(orjson.dumps({"type": "subscribe"}).decode())
        snapshot = orjson.loads(await ws.recv())
        assert snapshot["type"] == "snapshot" and snapshot["operator"]["manage"] is False
        assert {a["name"] for a in snapshot["agents"]} >= {"agent-main", "agent-other"}
        await ws.send(orjson.dumps(p.control_command("agent-main", "drain", 1)).decode())
        while (msg := orjson.loads(await ws.recv()))["type"] != "result":
            pass
        assert msg["ok"] is False and "read-only" in msg["message"]


async def test_logging_out_of_airflow_ends_the_pages_session(e2e: E2E) -> None:
    """A token Airflow revoked (logout) ends the open socket within a recheck interval."""
    token = e2e.stack.login("ops", fresh=True)
    async with connect(_socket_url(e2e), additional_headers={"Authorization": f"Bearer {token}"},
                       open_timeout=30) as ws:
        await ws.send(orjson.dumps({"type": "subscribe"}).decode())
        assert orjson.loads(await ws.recv())["operator"]["manage"] is True
        await asyncio.to_thread(_logout, e2e, token)
        with pytest.raises(ConnectionClosed) as closed:
            async with asyncio.timeout(60):
                while True:
                    await ws.recv()
        assert closed.value.rcvd is not None and closed.value.rcvd.code == p.CloseCode.FORBIDDEN


def _logout(e2e: E2E, token: str) -> None:
    import urllib.error
    import urllib.request

    req = urllib.request.Request(f"{e2e.stack.api_url}/api/v2/auth/logout",
                                 headers={"Authorization": f"Bearer {token}"})

    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args: Any, **kwargs: Any) -> None:
            return None

    try:
        urllib.request.build_opener(NoRedirect).open(req, timeout=30)
    except urllib.error.HTTPError as exc:  # the redirect to the login page
        assert exc.code in (302, 307), exc
