from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from config.health import healthz

api_v1 = [
    path("", include("ledger.urls")),
    path("", include("compliance.urls")),
    path("", include("mint_redeem.urls")),
]

urlpatterns = [
    path("healthz", healthz, name="healthz"),
    path("admin/", admin.site.urls),
    path("api/v1/", include((api_v1, "api"), namespace="v1")),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    # The split view serves Swagger UI's init script as a file (/api/docs/?script=), not inline, and the
    # page's styles are a static file: the Content-Security-Policy needs no 'unsafe-inline'.
    path("api/docs/", SpectacularSwaggerSplitView.as_view(url_name="schema", template_name="config/swagger_ui.html"),
         name="swagger-ui"),
]
