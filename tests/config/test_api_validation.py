"""`config.api.validated` returns what DRF's validation returns, and refuses what DRF refuses, alike."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from rest_framework.exceptions import ValidationError

from config.api import validated
from mint_redeem.serializers import MintCreateSerializer, RedemptionCreateSerializer

VALUES = (st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False)
          | st.text(max_size=50) | st.sampled_from(["cash", "in_kind", " cash", "AAPLx", "AAPLx ", "", "12",
                                                    "\x00", "\ud800", "é", "1.5", "x" * 16, "x" * 17, "x" * 41])
          | st.lists(st.integers(), max_size=2))


def drf(serializer_class, data):
    serializer = serializer_class(data=data)
    if serializer.is_valid():
        return "ok", dict(serializer.validated_data)
    return "refused", serializer.errors


def ours(serializer_class, data):
    try:
        return "ok", dict(validated(serializer_class, data))
    except ValidationError as exc:
        return "refused", exc.detail


@pytest.mark.parametrize("serializer_class", [MintCreateSerializer, RedemptionCreateSerializer])
def test_a_plain_valid_body_takes_the_fast_path_and_reads_the_same(serializer_class):
    data = {"product": "AAPLx", "chain": "ethereum", "quantity": "10.5", "wallet": 12, "funding": "cash",
            "payout": "in_kind", "extra": "ignored"}
    assert ours(serializer_class, data) == drf(serializer_class, data)


@settings(max_examples=400, deadline=None)
@given(st.sampled_from([MintCreateSerializer, RedemptionCreateSerializer]),
       st.fixed_dictionaries({}, optional={name: VALUES for name in
                                           ("product", "chain", "quantity", "wallet", "funding", "payout")}))
def test_any_body_reads_or_is_refused_exactly_as_drf_would(serializer_class, data):
    assert ours(serializer_class, data) == drf(serializer_class, data)


def test_non_object_bodies_are_refused_as_drf_refuses_them():
    for data in ([], "text", 3, None):
        assert ours(MintCreateSerializer, data) == drf(MintCreateSerializer, data)
