#!/usr/bin/env python
"""Take the README's screenshots from the running demo with headless Chromium (Debian's `chromium` and
`chromium-driver`), into docs/img/. Regenerate them after a change the pictures show:

    make run                                   # in one terminal: the demo, seeded and moving
    .venv/bin/python docs/screenshots.py       # in another (BASE_URL defaults to http://127.0.0.1:8000)

Admin pages are taken signed in as the demo's operations user (a session made for it here, so no
password is needed; it needs the development database, as `make run` uses). Adding a page is one line
in PAGES.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # config.browser, and Django's settings for the admin's session
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
os.environ.setdefault("ISSUER_ENV", "development")
OUT = ROOT / "docs" / "img"
MAX_HEIGHT_PX = 2600


@dataclass(frozen=True)
class Page:
    file: str
    path: str
    signed_in: bool
    ready: str  # a CSS selector present once the page has drawn what the picture shows
    until: str = ""  # the picture ends below the elements this CSS selector picks (the whole page if empty)
    width: int = 1440


PAGES = [
    Page("admin-dashboard.png", "/admin/", True, "#dashboard", until="#dashboard > *"),
    Page("admin-mint-requests.png", "/admin/mint_redeem/mintrequest/", True, "#result_list", width=1840),
    Page("admin-products.png", "/admin/custody/tokenproduct/", True, "#result_list", width=1840),
    Page("swagger.png", "/api/docs/", False, ".opblock-tag-section", until=".opblock-tag-section .opblock"),
    # The public transparency pages (they show the latest signed attestation: one must have been issued).
    Page("transparency.png", "/transparency/", False, "#latest", width=1280),
    Page("transparency-product.png", "/transparency/AAPLx/", False, "#latest", width=720),
]


def _session_cookie(username: str) -> dict:
    """A signed-in session for `username`, made the way Django's test client makes one."""
    import django

    django.setup()
    from django.conf import settings
    from django.contrib.auth import get_user_model
    from django.test import Client

    client = Client()
    client.force_login(get_user_model().objects.get(username=username))
    return {"name": settings.SESSION_COOKIE_NAME, "value": client.cookies[settings.SESSION_COOKIE_NAME].value,
            "path": "/"}


def _ready(browser, selector: str, timeout_s: float = 30) -> None:
    from selenium.webdriver.common.by import By

    deadline = time.monotonic() + timeout_s
    while not browser.find_elements(By.CSS_SELECTOR, selector):
        if time.monotonic() > deadline:
            raise RuntimeError(f"{browser.current_url}: {selector} never appeared")
        time.sleep(0.2)
    time.sleep(0.5)  # let fonts and the last layout settle


def _viewport(browser, width: int, height: int) -> None:
    """Size the window so that its viewport (what the picture holds) is `height` tall: the window's
    own frame takes some of the size set."""
    browser.set_window_size(width, height)
    frame = height - int(browser.execute_script("return window.innerHeight"))
    if frame:
        browser.set_window_size(width, height + frame)
    time.sleep(0.3)


def _height(browser, until: str) -> int:
    """The page's height, or down to the bottom of the element `until` selects."""
    if not until:
        return int(browser.execute_script("return document.documentElement.scrollHeight"))
    return int(browser.execute_script(
        "return Math.max(...[...document.querySelectorAll(arguments[0])].map("
        "el => el.getBoundingClientRect().bottom + window.scrollY));", until)) + 16


def take(base_url: str, pages: list[Page], *, username: str, out: Path = OUT) -> list[Path]:
    from config.browser import headless_browser

    out.mkdir(parents=True, exist_ok=True)
    cookie = _session_cookie(username) if any(p.signed_in for p in pages) else None
    written = []
    with headless_browser() as browser:
        if cookie:
            browser.get(base_url + "/admin/login/")  # a cookie is set on the site it belongs to
            browser.add_cookie(cookie)
            # The admin's navigation sidebar folded away: the pictures are of the page, not the menu.
            browser.execute_script("localStorage.setItem('django.admin.navSidebarIsOpen', 'false')")
        for page in pages:
            browser.set_window_size(page.width, 1000)
            browser.get(base_url + page.path)
            _ready(browser, page.ready)
            _viewport(browser, page.width, min(_height(browser, page.until), MAX_HEIGHT_PX))
            path = out / page.file
            browser.save_screenshot(str(path))
            written.append(path)
            print(f"{path}  <- {page.path}")
    return written


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--base-url", default=os.environ.get("BASE_URL", "http://127.0.0.1:8000"))
    parser.add_argument("--user", default="demo-operations", help="the staff user the admin pages are taken as")
    parser.add_argument("--only", nargs="*", help="file names of PAGES to take (default: all)")
    parser.add_argument("--out", default=str(OUT), help="where the pictures go (default: docs/img)")
    options = parser.parse_args()
    pages = [p for p in PAGES if not options.only or p.file in options.only]
    take(options.base_url.rstrip("/"), pages, username=options.user, out=Path(options.out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
