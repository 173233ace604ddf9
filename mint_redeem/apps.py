from django.apps import AppConfig


class MintRedeemConfig(AppConfig):
    name = "mint_redeem"
    default_auto_field = "django.db.models.BigAutoField"
