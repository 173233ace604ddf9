"""The DRF permission classes other apps put on their views."""

import pytest
from rest_framework.response import Response
from rest_framework.test import APIRequestFactory, force_authenticate
from rest_framework.views import APIView

from compliance import roles
from compliance.permissions import HasTradeScope, IsAuditor, IsMarketMaker
from tests.compliance import factories as f

pytestmark = pytest.mark.django_db


def make_view(*permission_classes):
    class View(APIView):
        authentication_classes = []

        def get(self, request):
            return Response({"ok": True})

        def post(self, request):
            return Response({"ok": True})

    View.permission_classes = list(permission_classes)
    return View.as_view()


def status(view, method, user, auth=None):
    factory = APIRequestFactory()
    request = getattr(factory, method)("/x")
    force_authenticate(request, user=user, token=auth)
    return view(request).status_code


def test_is_auditor_reads_and_never_writes():
    view = make_view(IsAuditor)
    auditor = f.make_staff(roles.AUDITOR)
    operations = f.make_staff(roles.OPERATIONS)
    assert status(view, "get", auditor) == 200
    assert status(view, "post", auditor) == 403
    assert status(view, "get", operations) == 403


def test_is_market_maker_and_trade_scope():
    view = make_view(IsMarketMaker, HasTradeScope)
    trader = f.make_market_maker(chains=())
    reader_user, reader_key, _ = f.make_api_key(participant=trader.participant, scope="read")
    auditor_user, auditor_key, _ = f.make_auditor_api_key()
    assert status(view, "get", trader.user, trader.api_key) == 200
    assert status(view, "post", trader.user, trader.api_key) == 200
    assert status(view, "get", reader_user, reader_key) == 200
    assert status(view, "post", reader_user, reader_key) == 403
    assert status(view, "get", auditor_user, auditor_key) == 403  # an auditor key has no participant
    assert status(view, "get", trader.user, None) == 403  # a market maker's user without its key
