from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from config import converters  # noqa: F401  (registers <id:...> before the apps' URLs are read)
from config.errors import JsonErrorsMixin
from config.health import healthz
from custody.transparency import transparency

# Under /api/ these answer in the API's JSON envelope (config.errors); elsewhere, Django's HTML pages.
handler400 = "config.errors.bad_request"
handler403 = "config.errors.permission_denied"
handler404 = "config.errors.page_not_found"
handler500 = "config.errors.server_error"



class SchemaView(JsonErrorsMixin, SpectacularAPIView):
    pass


class SwaggerUiView(JsonErrorsMixin, SpectacularSwaggerSplitView):
    pass


api_v1 = [
    path("", include("ledger.urls")),
    path("", include("compliance.urls")),
    path("", include("custody.urls")),
    path("", include("mint_redeem.urls")),
]

urlpatterns = [
    path("healthz", healthz, name="healthz"),
    path("admin/", admin.site.urls),
    path("api/v1/", include((api_v1, "api"), namespace="v1")),
    path("api/schema/", SchemaView.as_view(), name="schema"),
    # Public, server-rendered: every product's reserves from the signed attestations.
    path("transparency/", transparency, name="transparency"),
    path("transparency/<symbol:symbol>/", transparency, name="transparency-product"),
    # The split view serves Swagger UI's init script as a file (/api/docs/?script=), not inline, and the
    # page's styles are a static file: the Content-Security-Policy needs no 'unsafe-inline'.
    path("api/docs/", SwaggerUiView.as_view(url_name="schema", template_name="config/swagger_ui.html"),
         name="swagger-ui"),
]
