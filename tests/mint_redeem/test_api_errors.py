"""A ledger refusal that reaches a view is a 4xx in the API's envelope with a stable code, never a 500:
here the commonest, another writer having appended to a request's stream first, over real HTTP."""

from __future__ import annotations

from django.db.models import F

from ledger import selectors
from ledger.services import NewEvent, append
from mint_redeem.models import MintRequest
from tests.api_server import SignedHttp


def test_a_stream_changed_under_a_request_is_a_retryable_409_that_changes_nothing(committed, live_server, market,
                                                                                    mm, operations):
    http = SignedHttp(mm.credentials, live_server.url)
    created = http.post("/api/v1/mints", {"product": "AAPLx", "chain": "ethereum", "quantity": "2",
                                          "wallet": mm.wallets["ethereum"].pk, "funding": "cash"}, key="mint-1")
    assert created.status_code == 201, created.text
    mint_id = created.json()["id"]
    # Another writer appends to the mint's stream first; the request row has not caught up yet.
    append(events=[NewEvent(stream=f"mint-{mint_id}", type="mint.approved",
                            data={"request_id": mint_id, "approved_by": operations.pk})], actor="test")
    head = selectors.head()

    refused = http.post(f"/api/v1/mints/{mint_id}/cancel", {"reason": "changed my mind"}, key="cancel-1")
    assert refused.status_code == 409, refused.text
    assert refused.json()["error"]["code"] == "concurrent_update"
    assert refused.json()["error"]["retryable"] is True
    assert MintRequest.objects.get(pk=mint_id).state == "accepted"
    assert selectors.head() == head

    # Once the row has caught up, the same request with the same key goes through: nothing was stored.
    MintRequest.objects.filter(pk=mint_id).update(version=F("version") + 1)
    cancelled = http.post(f"/api/v1/mints/{mint_id}/cancel", {"reason": "changed my mind"}, key="cancel-1")
    assert cancelled.status_code == 200, cancelled.text
    assert cancelled.json()["state"] == "cancelled"
