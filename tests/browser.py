"""Headless Chromium (Debian's chromium + chromedriver, driven by selenium) for page tests."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from selenium import webdriver
from selenium.webdriver.chrome.service import Service


@contextmanager
def chromium(profile: Path) -> Iterator[webdriver.Chrome]:
    """A browser with its own profile; a screenshot of the last page is left next to it."""
    opts = webdriver.ChromeOptions()
    opts.binary_location = "/usr/bin/chromium"
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                f"--user-data-dir={profile / 'chromium'}", "--window-size=1400,900"):
        opts.add_argument(arg)
    driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=opts)
    try:
        yield driver
    finally:
        driver.save_screenshot(str(profile / "last-page.png"))
        driver.quit()


async def until(check: Callable[[], Any], what: str, timeout: float = 20) -> Any:
    """``check``'s first truthy value (run off the event loop), or an AssertionError naming ``what``."""
    for _ in range(int(timeout / 0.2)):
        try:
            value = await asyncio.to_thread(check)
            if value:
                return value
        except Exception:  # noqa: BLE001 - element not rendered yet
            pass
        await asyncio.sleep(0.2)
    raise AssertionError(f"the page never showed {what}")


async def act(action: Callable[[], Any], what: str, timeout: float = 20) -> None:
    """Do ``action`` on elements found afresh each try: a live page redraws its rows whenever the
    fleet changes, so an element found a moment ago may be gone (stale) when it is used."""
    await until(lambda: action() or True, what, timeout)
