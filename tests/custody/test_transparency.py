"""The public transparency pages: what the latest attestation says, a server-drawn chart, the commands to
check it; nothing inline or from elsewhere (the strict CSP); rendered by a real headless Chromium."""

from __future__ import annotations

import pytest

from custody.attestations import attestation_issue
from tests.config.test_no_external_code import CHROMIUM, _headless, check_page
from tests.custody.conftest import E18, mint


def _fetcher(client):
    def fetch(url):
        response = client.get(url)
        body = b"".join(response.streaming_content) if response.streaming else response.content
        return response.status_code, response.get("Content-Type", ""), response.get("Content-Security-Policy"), body
    return fetch


def test_the_pages_show_the_latest_attestation_chart_and_commands_under_the_policy(client, registered):
    assert "No attestation has been issued yet" in client.get("/transparency/").content.decode()
    attestation_issue(actor="user:1")
    mint("ethereum", "AAPLx", E18)
    row = attestation_issue(actor="user:1")
    page = client.get("/transparency/").content.decode()
    assert row.attestation_id in page and "1.999999999" not in page  # the latest (6 tokens now), not the first
    assert "1.666666666" in page and "bny" in page
    assert page.count("<polyline") == 2 and 'points=""' not in page
    assert "python -m ledger.verify_attestation attestation.json --pubkey keys.json" in page
    assert 'name="viewport"' in page
    product = client.get("/transparency/AAPLx/").content.decode()
    assert "Reserves of AAPLx" in product and "Custodians" in product
    assert client.get("/transparency/NOPEx/").status_code == 404
    for url in ("/transparency/", "/transparency/AAPLx/"):
        check_page(_fetcher(client), url, "http://testserver", statuses=(200,))


@pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed")
def test_the_page_renders_in_headless_chromium_without_a_policy_violation(committed, registered, live_server,
                                                                          tmp_path):
    row = attestation_issue(actor="user:1")
    dom, console = _headless(live_server.url + "/transparency/AAPLx/", tmp_path / "profile")
    assert row.attestation_id in dom and "<svg" in dom and "polyline" in dom, dom[-2000:]
    assert "Content Security Policy" not in console, console
