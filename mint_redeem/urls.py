from django.urls import path

from config import converters  # noqa: F401  (registers <id:...>)
from mint_redeem import views

urlpatterns = [
    path("mints", views.MintListView.as_view(), name="mint-list"),
    path("mints/<id:mint_id>", views.MintDetailView.as_view(), name="mint-detail"),
    path("mints/<id:mint_id>/backing", views.MintBackingView.as_view(), name="mint-backing"),
    path("mints/<id:mint_id>/cancel", views.MintCancelView.as_view(), name="mint-cancel"),
    path("redemptions", views.RedemptionListView.as_view(), name="redemption-list"),
    path("redemptions/<id:redemption_id>", views.RedemptionDetailView.as_view(), name="redemption-detail"),
    path("redemptions/<id:redemption_id>/cancel", views.RedemptionCancelView.as_view(), name="redemption-cancel"),
    path("products", views.ProductListView.as_view(), name="product-list"),
    path("webhooks", views.WebhookListView.as_view(), name="webhook-list"),
    path("signature-check", views.SignatureCheckView.as_view(), name="signature-check"),
]
