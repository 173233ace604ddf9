from django.apps import AppConfig


class ComplianceConfig(AppConfig):
    name = "compliance"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from django.db.models.signals import post_migrate

        from compliance import (
            events,  # noqa: F401  (registers the event types)
            roles,
            schema,  # noqa: F401  (registers the OpenAPI description of the API-key authentication)
        )

        # Other apps' models appear in later migrations, so role permissions are re-synced after every
        # migrate rather than only in the data migration that creates the groups.
        post_migrate.connect(roles.sync_role_permissions_on_migrate, dispatch_uid="compliance.roles.sync")
