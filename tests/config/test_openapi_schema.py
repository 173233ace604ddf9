"""The schema at /api/schema/ declares every answer each operation can give, from how the operation is built
(config.openapi, compliance.schema): every refusal is the one `Error` component; authentication,
permissions, bodies, ids in the path, pages, idempotency, rate limits and the database each bring theirs.
The contract test (tests/mint_redeem/test_api_contract.py) then holds the running API to it."""

from __future__ import annotations

import pytest
from django.core.management import call_command
from drf_spectacular.generators import SchemaGenerator

pytestmark = pytest.mark.django_db

SAFE = {"get", "head", "options"}


@pytest.fixture(scope="module")
def schema():
    return SchemaGenerator().get_schema(request=None, public=True)


def operations(schema):
    for path, methods in schema["paths"].items():
        for method, operation in methods.items():
            yield path, method, operation


def codes_of(response) -> set[str]:
    examples = response["content"]["application/json"].get("examples", {})
    return {example["value"]["error"]["code"] for example in examples.values()}


def test_the_schema_is_generated_without_a_warning():
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", "/dev/null")


def test_the_schema_is_served_to_anyone(client):
    response = client.get("/api/schema/?format=json")
    assert response.status_code == 200
    assert "/api/v1/mints" in response.json()["paths"]


def test_every_refusal_is_the_one_error_envelope(schema):
    error = schema["components"]["schemas"]["Error"]
    assert error["required"] == ["error"]
    detail = schema["components"]["schemas"]["ErrorDetail"]
    assert set(detail["properties"]) == {"code", "message", "retryable", "details"}
    assert set(detail["required"]) == {"code", "message", "retryable"}
    for path, method, operation in operations(schema):
        for status, response in operation["responses"].items():
            if status.startswith("2") or status == "304":  # 304 Not Modified has no body
                continue
            content = response["content"]["application/json"]
            assert content["schema"] == {"$ref": "#/components/schemas/Error"}, (method, path, status)
            assert codes_of(response), (method, path, status)
            for code in codes_of(response):
                assert f"`{code}`" in response["description"], (method, path, status, code)


def test_every_operation_declares_400_406_and_503_database_unavailable_with_retry_after(schema):
    for path, method, operation in operations(schema):
        responses = operation["responses"]
        assert "bad_request" in codes_of(responses["400"]), (method, path)
        assert "not_acceptable" in codes_of(responses["406"]), (method, path)
        assert "database_unavailable" in codes_of(responses["503"]), (method, path)
        assert responses["503"]["headers"]["Retry-After"]["required"] is True


PUBLIC_PREFIXES = ("/api/v1/attestations", "/api/v1/products/{symbol}/reserves")


def test_market_maker_operations_declare_401_403_and_429(schema):
    for path, method, operation in operations(schema):
        if path.startswith(("/api/v1/compliance/", "/api/v1/staff/", *PUBLIC_PREFIXES)):
            continue
        assert operation["security"] == [{"MarketMakerApiKey": []}]
        responses = operation["responses"]
        unauthorized = codes_of(responses["401"])
        assert {"not_authenticated", "api_key_invalid", "api_key_revoked", "signature_invalid",
                "signature_replayed"} <= unauthorized, (method, path)
        assert ("signature_missing" in unauthorized) == (method not in SAFE), (method, path)
        assert responses["401"]["headers"]["WWW-Authenticate"]["required"] is True
        assert "permission_denied" in codes_of(responses["403"])
        assert codes_of(responses["429"]) == {"rate_limited"}
        assert responses["429"]["headers"]["Retry-After"]["required"] is True


def test_public_operations_need_no_credentials_and_declare_429_and_304(schema):
    public = [(path, op) for path, method, op in operations(schema) if path.startswith(PUBLIC_PREFIXES)]
    assert len(public) == 5
    for path, operation in public:
        assert operation["security"] == [{}], path
        assert "401" not in operation["responses"] and "403" not in operation["responses"], path
        assert codes_of(operation["responses"]["429"]) == {"rate_limited"}, path
        assert operation["responses"]["429"]["headers"]["Retry-After"]["required"] is True
        assert "304" in operation["responses"], path


def test_staff_operations_refuse_with_403_never_401(schema):
    """Their first authentication is the staff session, which names no WWW-Authenticate challenge, so DRF
    answers every failed or missing authentication with 403."""
    staff = [(path, op) for path, method, op in operations(schema)
             if path.startswith(("/api/v1/compliance/", "/api/v1/staff/"))]
    assert staff
    for path, operation in staff:
        assert "401" not in operation["responses"], path
        assert {"not_authenticated", "permission_denied", "api_key_invalid"} <= codes_of(operation["responses"]["403"])


def test_operations_with_a_body_declare_its_refusals(schema):
    for path, method, operation in operations(schema):
        if "requestBody" not in operation:
            continue
        assert {"parse_error", "invalid"} <= codes_of(operation["responses"]["400"]), (method, path)
        assert codes_of(operation["responses"]["415"]) == {"unsupported_media_type"}, (method, path)


def test_operations_with_an_id_in_the_path_declare_404_and_state_the_id_as_an_int64(schema):
    for path, method, operation in operations(schema):
        if "{" not in path:
            continue
        assert "not_found" in codes_of(operation["responses"]["404"]), (method, path)
        (parameter,) = [p for p in operation["parameters"] if p["in"] == "path"]
        if parameter["schema"].get("type") == "string":  # content addresses and symbols state their pattern
            assert parameter["schema"]["pattern"].startswith("^"), (method, path)
            continue
        assert parameter["schema"] == {"type": "integer", "format": "int64", "minimum": 1,
                                       "maximum": 2**63 - 1}


def test_every_post_that_changes_something_declares_its_idempotency_key_and_refusals(schema):
    posts = {path: op for path, method, op in operations(schema) if method == "post"}
    assert set(posts) == {"/api/v1/mints", "/api/v1/mints/{mint_id}/cancel", "/api/v1/redemptions",
                          "/api/v1/redemptions/{redemption_id}/cancel", "/api/v1/signature-check",
                          "/api/v1/wallets", "/api/v1/wallets/{wallet_id}/challenge",
                          "/api/v1/wallets/{wallet_id}/verify", "/api/v1/webhooks"}
    for path, operation in posts.items():
        keys = [p for p in operation.get("parameters", []) if p["name"] == "Idempotency-Key"]
        if path == "/api/v1/signature-check":  # changes nothing, needs no key
            assert not keys and "409" not in operation["responses"]
            continue
        (key,) = keys
        assert key["in"] == "header" and key["required"] is True
        responses = operation["responses"]
        assert "idempotency_key_required" in codes_of(responses["400"]), path
        assert {"idempotency_key_reused", "idempotency_request_in_flight",
                "concurrent_update"} <= codes_of(responses["409"]), path
        success = next(r for status, r in responses.items() if status.startswith("2"))
        assert "Idempotent-Replayed" in success["headers"], path


def test_mint_and_redemption_requests_declare_what_their_services_refuse(schema):
    for path in ("/api/v1/mints", "/api/v1/redemptions"):
        responses = schema["paths"][path]["post"]["responses"]
        assert {"invalid_quantity", "unknown_chain", "wallet_chain_mismatch"} <= codes_of(responses["400"])
        assert {"kyc_expired", "wallet_frozen", "wallet_not_verified"} <= codes_of(responses["403"])
        assert {"unknown_product", "unknown_wallet"} <= codes_of(responses["404"])
        assert {"below_minimum", "above_daily_limit"} <= codes_of(responses["422"])
    assert "minting_paused" in codes_of(schema["paths"]["/api/v1/mints"]["post"]["responses"]["409"])
    for path in ("/api/v1/mints/{mint_id}/cancel", "/api/v1/redemptions/{redemption_id}/cancel"):
        assert "transition_not_allowed" in codes_of(schema["paths"][path]["post"]["responses"]["409"])


@pytest.mark.parametrize("path", ["/api/v1/mints", "/api/v1/redemptions"])
def test_lists_are_declared_as_the_pages_they_answer(schema, path):
    operation = schema["paths"][path]["get"]
    page_ref = operation["responses"]["200"]["content"]["application/json"]["schema"]["$ref"]
    page = schema["components"]["schemas"][page_ref.rsplit("/", 1)[1]]
    assert page["type"] == "object" and set(page["properties"]) == {"next", "previous", "results"}
    assert page["properties"]["results"]["type"] == "array"
    assert page["properties"]["next"]["nullable"] is True
    parameters = {p["name"]: p for p in operation["parameters"]}
    assert {"cursor", "page_size", "state", "product", "chain", "created_after", "created_before"} <= set(parameters)
    assert parameters["created_after"]["schema"]["format"] == "date-time"
    responses = operation["responses"]
    assert "not_found" in codes_of(responses["404"])  # a cursor the list did not give
    assert "invalid" in codes_of(responses["400"])  # a filter that does not parse
