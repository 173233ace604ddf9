"""DRF permission classes for the market-maker and auditor APIs."""

from __future__ import annotations

from rest_framework import permissions

from compliance import roles
from compliance.models import ApiKey, ApiScope


def _api_key(request) -> ApiKey | None:
    return request.auth if isinstance(request.auth, ApiKey) else None


class IsMarketMaker(permissions.BasePermission):
    """Authenticated with a market maker's API key (request.auth.participant is set)."""

    message = "a market maker API key is required"

    def has_permission(self, request, view) -> bool:
        key = _api_key(request)
        return key is not None and key.participant_id is not None and roles.user_has_role(request.user,
                                                                                          roles.MARKET_MAKER)


class HasTradeScope(permissions.BasePermission):
    """Reads need any scope; state-changing requests need the trade scope."""

    message = "this API key has read scope only"

    def has_permission(self, request, view) -> bool:
        if request.method in permissions.SAFE_METHODS:
            return True
        key = _api_key(request)
        return key is not None and key.scope == ApiScope.TRADE


class IsAuditor(permissions.BasePermission):
    """An auditor (by session or read-only API key) may read; never write."""

    message = "auditors have read-only access"

    def has_permission(self, request, view) -> bool:
        return request.method in permissions.SAFE_METHODS and roles.user_has_role(request.user, roles.AUDITOR)


class IsStaffReader(permissions.BasePermission):
    """Issuer staff (operations, approver, compliance officer, auditor) may read compliance records."""

    message = "issuer staff only"

    def has_permission(self, request, view) -> bool:
        if request.method not in permissions.SAFE_METHODS or not request.user.is_authenticated:
            return False
        return request.user.groups.filter(name__in=roles.STAFF_ROLES).exists()
