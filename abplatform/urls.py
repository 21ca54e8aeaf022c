"""URL configuration."""

from django.contrib import admin
from django.templatetags.static import static
from django.urls import include, path
from django.views.generic import RedirectView
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerSplitView

from abplatform import views
from abplatform.errors import not_found, server_error_or_unavailable

urlpatterns = [
    path("", views.home, name="home"),
    path("variants/", include("recommenders.page_urls")),
    path("experiments/", include("abplatform.page_urls")),
    path("alerts/", include("ops.page_urls")),
    path("accounts/", include("django.contrib.auth.urls")),
    path("admin/", admin.site.urls),
    path("api/v1/", include("recommenders.urls")),
    path("api/v1/", include("abplatform.api_urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerSplitView.as_view(url_name="schema"), name="api-docs"),
    path(
        "api/redoc/",
        SpectacularRedocView.as_view(url_name="schema", template_name="api/redoc.html"),
        name="api-redoc",
    ),
    # Pages without the layout's icon link (the API's browsable pages, Django's plain error pages) make
    # browsers ask for /favicon.ico; answer with the layout's icon instead of a 404 in their console.
    path("favicon.ico", RedirectView.as_view(url=static("favicon.svg"), permanent=True)),
    # /healthz, /readyz, /metrics (answered first by ops.middleware.OpsMiddleware).
    path("", include("ops.urls")),
]

# An unreachable database answers 503 with Retry-After (pages and API); other errors stay a 500.
handler500 = server_error_or_unavailable
# Under /api/ a path that names nothing is a JSON 404, as the schema documents.
handler404 = not_found
