from django.urls import include, path
from rest_framework.routers import DefaultRouter

from experiments import api, api_offpolicy, api_simulations

router = DefaultRouter()
router.register("experiments", api.ExperimentViewSet, basename="experiment")

urlpatterns = [
    path(
        "experiments/<slug:key>/recommendations", api.RecommendationsView.as_view(), name="experiment-recommendations"
    ),
    path("events", api.EventsView.as_view(), name="events"),
    path(
        "experiments/<slug:key>/simulations",
        api_simulations.SimulationListView.as_view(),
        name="experiment-simulations",
    ),
    path(
        "experiments/<slug:key>/simulations/<int:run_id>",
        api_simulations.SimulationDetailView.as_view(),
        name="experiment-simulation",
    ),
    path(
        "experiments/<slug:key>/simulations/<int:run_id>/cancel",
        api_simulations.SimulationCancelView.as_view(),
        name="experiment-simulation-cancel",
    ),
    path("offpolicy-estimates", api_offpolicy.EstimateListView.as_view(), name="offpolicy-estimates"),
    path(
        "offpolicy-estimates/<int:estimate_id>", api_offpolicy.EstimateDetailView.as_view(), name="offpolicy-estimate"
    ),
    path("", include(router.urls)),
]
