"""URL configuration."""

from django.contrib import admin
from django.urls import include, path

from abplatform import views

urlpatterns = [
    path("", views.home, name="home"),
    path("accounts/", include("django.contrib.auth.urls")),
    path("admin/", admin.site.urls),
]
