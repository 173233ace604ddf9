"""The admin app, with the project's admin site as `admin.site` (so every `@admin.register` lands on it)."""

from django.contrib.admin.apps import AdminConfig


class IssuerAdminConfig(AdminConfig):
    default_site = "config.admin_site.IssuerAdminSite"

    def ready(self):
        super().ready()  # autodiscovers every app's admin module
        from django.contrib import admin

        from config import access_admin

        access_admin.register(admin.site)
