from django.urls import include, path
from rest_framework.routers import DefaultRouter

from experiments import api

router = DefaultRouter()
router.register("experiments", api.ExperimentViewSet, basename="experiment")

urlpatterns = [
    path(
        "experiments/<slug:key>/recommendations", api.RecommendationsView.as_view(), name="experiment-recommendations"
    ),
    path("events", api.EventsView.as_view(), name="events"),
    path("", include(router.urls)),
]
