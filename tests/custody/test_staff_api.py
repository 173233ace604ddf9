"""The read-only staff API: the event log with filters, paged by position; auditors read, market makers
and anonymous callers cannot, and nothing is written."""

from __future__ import annotations

from ledger.selectors import head
from tests.compliance import factories as f

URL = "/api/v1/staff/ledger/events"


def test_an_auditor_pages_through_the_filtered_log(client, registered):
    _user, _key, credentials = f.make_auditor_api_key()

    def get(query: str):
        path = f"{URL}?{query}"
        return client.get(path, headers=f.sign_request(credentials, "GET", path))

    before = head()
    page = get("stream=product-AAPLx&limit=2").json()
    assert [e["type"] for e in page["events"]] == ["custody.product_registered", "custody.deployment_registered"]
    rest = get(f"stream=product-AAPLx&limit=2&after_position={page['next_after_position']}").json()
    assert [e["type"] for e in rest["events"]] == ["custody.deployment_registered"]
    assert rest["next_after_position"] is None
    by_user = get("actor=user:1").json()["events"]
    assert {"custody.product_registered", "custody.deployment_registered"} <= {e["type"] for e in by_user}
    assert {e["metadata"]["actor"] for e in by_user} == {"user:1"}
    assert get("since=2999-01-01T00:00:00Z").json()["events"] == []
    last = get(f"after_position={before.position - 1}").json()["events"]
    assert [(e["position"], e["hash"]) for e in last] == [(before.position, before.hash.hex())]
    assert get("after_position=abc").json()["error"]["code"] == "invalid_filter"
    assert get("limit=5000").status_code == 400
    assert head() == before


def test_market_makers_and_anonymous_callers_are_refused(client, registered):
    mm = f.make_market_maker(chains=())
    assert client.get(URL, headers=f.sign_request(mm.credentials, "GET", URL)).status_code == 403
    assert client.get(URL).status_code == 403
