"""Every refusal the API can meet becomes the JSON envelope with a stable code and a `retryable` flag:
domain refusals, every ledger refusal, the database going away; and `is_final` (what an idempotent
endpoint stores) follows the flag."""

from __future__ import annotations

import psycopg
import pytest
from django.db import IntegrityError, OperationalError
from rest_framework import exceptions
from rest_framework.response import Response

from config import api
from ledger import errors as ledger_errors


def all_subclasses(cls):
    for sub in cls.__subclasses__():
        yield sub
        yield from all_subclasses(sub)


def handled(exc):
    response = api.exception_handler(exc, {})
    assert response is not None, f"{exc!r} would be a 500"
    return response


@pytest.mark.parametrize("error_class", sorted({ledger_errors.LedgerError, *all_subclasses(ledger_errors.LedgerError)},
                                               key=lambda c: c.__name__))
def test_every_ledger_refusal_is_a_4xx_with_a_stable_code(error_class):
    response = handled(error_class("refused"))
    assert 400 <= response.status_code < 500
    error = response.data["error"]
    assert error["code"] and error["code"] != "error"
    assert isinstance(error["retryable"], bool)
    if error_class is not ledger_errors.LedgerError:
        assert error_class in api.LEDGER_REFUSALS, f"{error_class.__name__} needs its own line in LEDGER_REFUSALS"


def test_a_stream_version_conflict_is_a_retryable_409_concurrent_update():
    response = handled(ledger_errors.StreamVersionConflict("stream mint-1 is at version 3, expected 2"))
    assert response.status_code == 409
    assert response.data["error"]["code"] == "concurrent_update"
    assert response.data["error"]["retryable"] is True
    assert not api.is_final(response)


def test_domain_refusals_depend_on_the_moment_unless_they_are_about_the_body():
    paused = handled(api.DomainError("minting is paused", code="minting_paused", http_status=409))
    assert paused.status_code == 409 and paused.data["error"]["retryable"] is True and not api.is_final(paused)
    from mint_redeem.services.quoting import InvalidQuantity

    # Final where it is raised: the refusal follows from the body alone.
    bad_quantity = handled(InvalidQuantity("too many decimals"))
    assert bad_quantity.data["error"]["code"] == "invalid_quantity"
    assert bad_quantity.data["error"]["retryable"] is False and api.is_final(bad_quantity)
    undeclared = handled(api.DomainError("no", code="invalid_quantity"))  # a code alone decides nothing
    assert undeclared.data["error"]["retryable"] is True
    declared = handled(api.DomainError("no", code="something_new", retryable=False))
    assert declared.data["error"]["retryable"] is False


def test_drf_validation_is_final_and_throttling_is_not():
    invalid = handled(exceptions.ValidationError({"quantity": ["not a number"]}))
    assert invalid.status_code == 400 and invalid.data["error"]["retryable"] is False and api.is_final(invalid)
    throttled = handled(exceptions.Throttled(wait=3))
    assert throttled.status_code == 429 and throttled.data["error"]["retryable"] is True
    assert not api.is_final(throttled)


def test_the_database_going_away_is_a_retryable_503_and_a_lost_race_a_409():
    gone = OperationalError("terminating connection due to administrator command")
    gone.__cause__ = psycopg.errors.AdminShutdown()
    response = handled(gone)
    assert response.status_code == 503 and response["Retry-After"] == "1"
    assert response.data["error"] == {"code": "database_unavailable", "message": response.data["error"]["message"],
                                      "retryable": True}
    race = OperationalError("could not serialize access")
    race.__cause__ = psycopg.errors.SerializationFailure()
    assert handled(race).status_code == 409
    assert handled(race).data["error"]["code"] == "concurrent_update"
    # An integrity error is a bug, not a refusal: it stays Django's 500, with its traceback in the log.
    assert api.exception_handler(IntegrityError("duplicate key"), {}) is None


def test_only_2xx_and_final_refusals_are_final():
    assert api.is_final(Response({"id": 1}, status=201))
    assert not api.is_final(Response({"error": {"code": "x", "message": "", "retryable": True}}, status=409))
    assert api.is_final(Response({"error": {"code": "x", "message": "", "retryable": False}}, status=400))
    assert not api.is_final(Response({"error": {"code": "x", "message": "", "retryable": False}}, status=500))
    assert not api.is_final(Response(None, status=302))
