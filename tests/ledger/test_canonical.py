"""The append path's canonical JSON shortcut is byte for byte RFC 8785 on every JSON-safe document."""

from __future__ import annotations

import rfc8785
from hypothesis import given, settings
from hypothesis import strategies as st

from ledger import canonical

SAFE_INT = st.integers(min_value=-canonical.MAX_SAFE_INTEGER, max_value=canonical.MAX_SAFE_INTEGER)
# Control characters, quotes, backslashes, non-ASCII and astral characters (which sort differently by
# UTF-16 unit than by code point): everything that could tell the two encoders apart.
TEXT = st.text(alphabet=st.characters(exclude_categories=("Cs",)), max_size=12) | st.sampled_from(
    ["", "\"", "\\", "\x00\x01\x1f\x7f", "\b\f\n\r\t", "\u2028\u2029", "\ue000", "\U0001f600", "a/b"])
JSON_SAFE = st.recursive(
    st.none() | st.booleans() | SAFE_INT | TEXT,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(TEXT, inner, max_size=4),
    max_leaves=20,
)


@settings(max_examples=500, deadline=None)
@given(JSON_SAFE)
def test_encode_is_rfc8785(value):
    assert canonical.encode(value) == rfc8785.dumps(value)


def test_keys_that_sort_differently_by_utf16_take_the_library_path():
    # U+E000 sorts after U+1F600 by UTF-16 code unit (0xE000 > 0xD83D), before it by code point.
    value = {"\ue000": 1, "\U0001f600": 2, "a": 3}
    assert canonical.encode(value) == rfc8785.dumps(value)
