"""Everything under /api/ answers in the API's JSON envelope, whatever answers: no URL matching (a malformed
id, an unknown path), a method a view does not take (the schema and Swagger UI included), a bug (500),
a request Django refuses before any view runs (400). The admin keeps Django's HTML pages."""

from __future__ import annotations

import sys

import pytest
from django.test import Client

from mint_redeem import views
from tests.compliance.factories import make_market_maker, sign_request

pytestmark = [pytest.mark.django_db, pytest.mark.reliability]


def envelope(response, status: int, code: str, *, retryable: bool = False) -> dict:
    assert response.status_code == status, response.content
    assert response["Content-Type"] == "application/json", response.content
    error = response.json()["error"]
    assert error["code"] == code and error["retryable"] is retryable and error["message"], error
    return error


@pytest.mark.parametrize("path", [
    "/api/v1/wallets/null", "/api/v1/wallets/-1", "/api/v1/wallets/0", "/api/v1/mints/1.5",
    "/api/v1/mints/99999999999999999999",  # past PostgreSQL's bigint: no id is that
    "/api/v1/mints/", "/api/v1/nothing", "/api/v2/mints", "/api/",
])
def test_a_path_no_url_matches_is_a_json_404(client, path):
    envelope(client.get(path), 404, "not_found")
    envelope(client.post(path, data=b"{}", content_type="application/json"), 404, "not_found")


def test_an_id_that_is_not_yours_or_not_there_is_not_found(client):
    mm = make_market_maker(chains=("ethereum",))
    for path in ("/api/v1/mints/424242", "/api/v1/redemptions/424242", "/api/v1/wallets/424242"):
        response = client.get(path, headers=sign_request(mm.credentials, "GET", path))
        envelope(response, 404, "not_found")


@pytest.mark.parametrize("method", ["post", "put", "delete"])
@pytest.mark.parametrize("path", ["/api/schema/", "/api/docs/"])
def test_the_schema_and_swagger_ui_refuse_other_methods_in_json(client, path, method):
    envelope(getattr(client, method)(path), 405, "method_not_allowed")


def test_a_method_an_endpoint_does_not_take_is_a_json_405(client):
    mm = make_market_maker(chains=("ethereum",))
    headers = sign_request(mm.credentials, "DELETE", "/api/v1/mints")
    error = envelope(client.delete("/api/v1/mints", headers=headers), 405, "method_not_allowed")
    assert "DELETE" in error["message"]


def test_a_bug_is_a_json_500_that_says_it_may_be_sent_again(monkeypatch):
    mm = make_market_maker(chains=("ethereum",))

    def broken():
        raise RuntimeError("a bug")

    monkeypatch.setattr(views, "products_with_reserves", broken)
    client = Client(raise_request_exception=False)
    response = client.get("/api/v1/products", headers=sign_request(mm.credentials, "GET", "/api/v1/products"))
    error = envelope(response, 500, "internal_error", retryable=True)
    assert "a bug" not in error["message"]  # nothing of the exception reaches the caller


def test_a_request_django_refuses_before_any_view_is_a_json_400(client):
    envelope(client.get("/api/v1/products", HTTP_HOST="not a host name"), 400, "bad_request")


def test_a_body_past_the_upload_limit_is_a_json_400(client, settings):
    mm = make_market_maker(chains=("ethereum",))
    body = b'{"url": "' + b"a" * (settings.DATA_UPLOAD_MAX_MEMORY_SIZE + 1) + b'"}'
    headers = sign_request(mm.credentials, "POST", "/api/v1/webhooks", body)
    response = client.post("/api/v1/webhooks", data=body, content_type="application/json", headers=headers)
    envelope(response, 400, "bad_request")


def test_a_body_nested_past_the_recursion_limit_is_a_400_parse_error(client):
    """Python's default limit, as in the server (the test runner raises it)."""
    mm = make_market_maker(chains=("ethereum",))
    body = b"[" * 5000 + b"]" * 5000
    headers = sign_request(mm.credentials, "POST", "/api/v1/webhooks", body)
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(1000)
    try:
        response = Client(raise_request_exception=False).post("/api/v1/webhooks", data=body,
                                                              content_type="application/json", headers=headers)
    finally:
        sys.setrecursionlimit(limit)
    envelope(response, 400, "parse_error")


def test_the_admin_keeps_its_html_pages(admin_client):
    response = admin_client.get("/admin/no-such-page/")
    assert response.status_code == 404
    assert response["Content-Type"].startswith("text/html")
    bug = Client(raise_request_exception=False)
    assert bug.get("/healthz", HTTP_HOST="not a host name")["Content-Type"].startswith("text/html")
