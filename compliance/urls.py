from django.urls import path

from compliance import views
from config import converters  # noqa: F401  (registers <id:...>)

urlpatterns = [
    path("participant", views.ParticipantView.as_view(), name="participant"),
    path("wallets", views.WalletListView.as_view(), name="wallets"),
    path("wallets/<id:wallet_id>", views.WalletDetailView.as_view(), name="wallet"),
    path("wallets/<id:wallet_id>/challenge", views.WalletChallengeView.as_view(), name="wallet-challenge"),
    path("wallets/<id:wallet_id>/verify", views.WalletVerifyView.as_view(), name="wallet-verify"),
    path("compliance/participants", views.StaffParticipantListView.as_view(), name="compliance-participants"),
    path("compliance/cases", views.StaffCaseListView.as_view(), name="compliance-cases"),
]
