"""Account naming and policies.

Accounts are named paths (`custody/<custodian>/<security>`, `tokens/<chain>/<product>`, ...). They
are created on first use with the policy of the longest registered prefix; apps register their
prefixes when they load (AppConfig.ready). A non-negative account refuses any command that would
take `posted - pending_out` below zero, inside the transaction that tried.
"""

from __future__ import annotations

import re

_POLICIES: dict[str, bool] = {}
_VALID_PATH = re.compile(r"^[a-z0-9_]+(/[A-Za-z0-9_.:\-]+)+$")
_VALID_ASSET = re.compile(r"^[A-Za-z0-9_.:\-/]{1,64}$")


def register_account_policy(prefix: str, *, non_negative: bool) -> None:
    _POLICIES[prefix] = non_negative


def is_non_negative(path: str) -> bool:
    best = ""
    for prefix in _POLICIES:
        if path.startswith(prefix) and len(prefix) > len(best):
            best = prefix
    return _POLICIES.get(best, False) if best else False


def is_valid_path(path: str) -> bool:
    return bool(_VALID_PATH.match(path)) and len(path) <= 200


def is_valid_asset(asset: str) -> bool:
    return bool(_VALID_ASSET.match(asset))
