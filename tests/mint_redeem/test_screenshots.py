"""docs/screenshots.py, run as the README prints it (a fresh process) against a live server: every page
it lists is taken, signed in where the page needs it, and each picture shows its page (a PNG of the
window's size, not an error page's)."""

from __future__ import annotations

import importlib.util
import struct
import sys

import pytest

from config.browser import CHROMEDRIVER, CHROMIUM
from tests.conftest import ROOT
from tests.subprocesses import command_env, describe, run


def _png_size(path) -> tuple[int, int]:
    header = path.read_bytes()[:24]
    assert header[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", header[16:24])


@pytest.mark.skipif(not (CHROMIUM and CHROMEDRIVER), reason="Debian's chromium and chromium-driver are not installed")
def test_the_screenshot_script_takes_every_page_as_printed(committed, live_server, market, mm, api, operations,
                                                            tmp_path):
    from .test_gates_and_refusals import post_mint

    assert post_mint(api, mm).status_code == 201  # the lists have a row to show
    spec = importlib.util.spec_from_file_location("screenshots", ROOT / "docs" / "screenshots.py")
    screenshots = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("screenshots", screenshots)  # its dataclasses look their module up there
    spec.loader.exec_module(screenshots)
    taken = run([sys.executable, "docs/screenshots.py", "--base-url", live_server.url, "--user", operations.username,
                 "--out", str(tmp_path)], env=command_env(), timeout_s=300)
    assert taken.returncode == 0, describe(taken)
    for page in screenshots.PAGES:
        width, height = _png_size(tmp_path / page.file)
        assert width == page.width and height > 300, (page.file, width, height)
        assert f"<- {page.path}" in taken.stdout
