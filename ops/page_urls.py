"""The alert pages under /alerts/."""

from django.urls import path

from ops import pages

app_name = "ops_pages"
urlpatterns = [
    path("", pages.alert_list, name="alerts"),
    path("<int:pk>/<slug:step>/", pages.alert_step, name="alert-step"),
]
