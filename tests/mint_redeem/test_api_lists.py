"""GET /mints and /redemptions answer pages (cursor pagination: `next`, `previous`, `results`), exactly as the
schema declares them; a cursor the list did not give is a 404, and a filter that does not parse a 400 (it
used to be dropped silently, answering every request as if unfiltered)."""

from __future__ import annotations

import pytest
from drf_spectacular.generators import SchemaGenerator

from mint_redeem import services

pytestmark = pytest.mark.django_db


def make_mints(mm, count: int):
    return [services.mint_request_create(participant=mm.participant, product_symbol="AAPLx", chain="ethereum",
                                         quantity="1", wallet_id=mm.wallets["ethereum"].pk, funding="cash",
                                         actor=f"participant:{mm.participant.pk}") for _ in range(count)]


@pytest.mark.parametrize("path", ["/api/v1/mints", "/api/v1/redemptions"])
def test_a_list_answers_the_page_its_schema_declares(api, market, path):
    if path == "/api/v1/mints":
        make_mints(api.mm, 1)
    schema = SchemaGenerator().get_schema(request=None, public=True)
    ref = schema["paths"][path]["get"]["responses"]["200"]["content"]["application/json"]["schema"]["$ref"]
    declared = schema["components"]["schemas"][ref.rsplit("/", 1)[1]]

    response = api.get(path)
    assert response.status_code == 200, response.content
    page = response.json()
    assert isinstance(page, dict) and set(page) == set(declared["properties"]) == {"next", "previous", "results"}
    assert isinstance(page["results"], list)


def test_pages_follow_next_to_the_end(api, market):
    mints = make_mints(api.mm, 3)
    seen, path = [], "/api/v1/mints?page_size=2"
    while path:
        page = api.get(path).json()
        seen += [m["id"] for m in page["results"]]
        path = page["next"] and page["next"].removeprefix("http://testserver")
    assert seen == [m.pk for m in reversed(mints)]


def test_a_cursor_the_list_did_not_give_is_a_404(api, market):
    response = api.get("/api/v1/mints?cursor=bz0tMQ%3D%3D")  # "o=-1": no offset a page gives
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


@pytest.mark.parametrize("query", ["created_after=yesterday", "created_before=2026-13-45", "funding=gold",
                                   "payout=gold"])
def test_a_filter_that_does_not_parse_is_a_400_naming_it(api, market, query):
    make_mints(api.mm, 1)
    path = "/api/v1/redemptions" if query.startswith("payout") else "/api/v1/mints"
    response = api.get(f"{path}?{query}")
    assert response.status_code == 400, response.content
    error = response.json()["error"]
    assert error["code"] == "invalid" and error["retryable"] is False
    assert query.split("=")[0] in error["details"]
