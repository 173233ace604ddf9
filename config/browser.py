"""Headless Chromium (Debian's `chromium` and `chromedriver`) through Selenium, for the admin's browser
tests and docs/screenshots.py. Only the installed binaries are used: Selenium is told where the driver
is, so it never tries to fetch one."""

from __future__ import annotations

import contextlib
import shutil
from collections.abc import Iterator

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")


@contextlib.contextmanager
def headless_browser(*, width: int = 1440, height: int = 1000) -> Iterator:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    if CHROMIUM is None or CHROMEDRIVER is None:
        raise RuntimeError("Debian's chromium and chromium-driver are needed: apt-get install chromium chromium-driver")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-dev-shm-usage",
                     f"--window-size={width},{height}", "--hide-scrollbars", "--force-device-scale-factor=1"):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})  # CSP refusals are logged there
    browser = webdriver.Chrome(options=options, service=Service(executable_path=CHROMEDRIVER))
    try:
        yield browser
    finally:
        browser.quit()


def sign_in(browser, base_url: str, username: str, password: str) -> None:
    """Sign in to the admin through its form, as a person would."""
    from selenium.webdriver.common.by import By

    browser.get(base_url + "/admin/login/?next=/admin/")
    browser.find_element(By.NAME, "username").send_keys(username)
    browser.find_element(By.NAME, "password").send_keys(password)
    browser.find_element(By.CSS_SELECTOR, "input[type=submit]").click()
    if "/admin/login/" in browser.current_url:
        raise RuntimeError(f"sign-in as {username} failed")
