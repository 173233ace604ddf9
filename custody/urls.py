from django.urls import path

from config import converters  # noqa: F401  (registers <attestation:...>, <symbol:...>)
from custody import staff_views, views

urlpatterns = [
    path("attestations", views.AttestationAsOfView.as_view(), name="attestation-as-of"),
    path("attestations/latest", views.AttestationLatestView.as_view(), name="attestation-latest"),
    path("attestations/keys", views.AttestationKeysView.as_view(), name="attestation-keys"),
    path("attestations/<attestation:attestation_id>", views.AttestationDetailView.as_view(), name="attestation-detail"),
    path("staff/ledger/events", staff_views.StaffEventLogView.as_view(), name="staff-ledger-events"),
    path("products/<symbol:symbol>/reserves", views.ProductReservesView.as_view(), name="product-reserves"),
]
