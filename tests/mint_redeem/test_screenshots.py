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
    from custody.attestations import attestation_issue
    from ledger.services import NewEvent, append

    from .test_gates_and_refusals import post_mint

    assert post_mint(api, mm).status_code == 201  # the lists have a row to show
    # The fixture made AAPLx with the ORM: record its registration as custody.product_register and
    # deployment_register do, so the attestation (which reads the log) lists it and its page exists.
    product = market.product
    append(events=[
        NewEvent(stream=f"product-{product.symbol}", type="custody.product_registered", data={
            "product": product.symbol, "ticker": market.security.ticker, "isin": market.security.isin,
            "multiplier": "1"}),
        NewEvent(stream=f"product-{product.symbol}", type="custody.deployment_registered", data={
            "product": product.symbol, "chain": "ethereum", "decimals": 18,
            "address": product.deployments.get(chain="ethereum").address})], actor="test:screenshots")
    attestation_issue(actor="test:screenshots")  # the transparency pages show the latest attestation
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
